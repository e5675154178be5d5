pub mod images;
pub mod resources;
