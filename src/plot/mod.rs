//! Curves for the console and `clipgan plot`: decimation and smoothing (`series`),
//! chart export to PNG/SVG with plotters (`export`) and CSV (`csv`).
pub mod series;
