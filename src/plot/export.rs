//! Charts to PNG and SVG with plotters, headless: the text renderer is plotters'
//! `ab_glyph` with a font embedded in the binary (assets/fonts/), so no system fonts or
//! fontconfig are needed. Curves are decimated (M4) to the plot's pixel width first, so
//! a million-point run gives a small SVG that still shows every spike.
use super::series::{self, Smoothing};
use super::XAxis;
use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// DejaVu Sans (Bitstream Vera licence, see assets/fonts/README).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Register the embedded font with plotters (once per process; every render calls it).
pub fn register_embedded_font() -> Result<()> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).map_err(|_| "the embedded font is not a valid TTF".to_string())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// One curve on a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    pub name: String,
    pub color: (u8, u8, u8),
    /// (x, y) in x order; non-finite y values are allowed (marked, not drawn).
    pub points: Vec<(f64, f64)>,
}

/// A shaded min-max band (e.g. around a group mean).
#[derive(Debug, Clone, PartialEq)]
pub struct BandSpec {
    pub color: (u8, u8, u8),
    /// (x, low, high) in x order.
    pub points: Vec<(f64, f64, f64)>,
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// How x values are labelled (wall time as UTC time of day).
    pub x_axis: XAxis,
    pub series: Vec<SeriesSpec>,
    pub bands: Vec<BandSpec>,
    pub log_y: bool,
    /// Applied to each series; the raw curve is then drawn faintly behind.
    pub smoothing: Smoothing,
    /// Quantile clipped from each end of each series for the y range (0 = full range).
    pub y_clip: f64,
    pub width: u32,
    pub height: u32,
}

impl Default for ChartSpec {
    fn default() -> Self {
        ChartSpec {
            title: String::new(),
            x_label: XAxis::Step.label().into(),
            y_label: String::new(),
            x_axis: XAxis::Step,
            series: Vec::new(),
            bands: Vec::new(),
            log_y: false,
            smoothing: Smoothing::Off,
            y_clip: 0.0,
            width: 1024,
            height: 640,
        }
    }
}

/// A compact tick label.
fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.2e}");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn fmt_x(axis: XAxis, v: f64) -> String {
    match axis {
        XAxis::Wall => {
            chrono::DateTime::from_timestamp(v as i64, 0).map(|t| t.format("%H:%M:%S").to_string()).unwrap_or_else(|| fmt_num(v))
        }
        _ => fmt_num(v),
    }
}

/// One series ready to draw: y transformed (log), smoothed alongside.
struct Prepared {
    xs: Vec<f64>,
    raw: Vec<f64>,
    smooth: Option<Vec<f64>>,
    sorted: bool,
}

fn ty(log_y: bool, y: f64) -> f64 {
    if log_y {
        series::log10_or_nan(y)
    } else {
        y
    }
}

fn prepare(spec: &ChartSpec) -> Vec<Prepared> {
    spec.series
        .iter()
        .map(|s| {
            let xs: Vec<f64> = s.points.iter().map(|p| p.0).collect();
            let ys: Vec<f64> = s.points.iter().map(|p| p.1).collect();
            // Smooth in data space (as TensorBoard does), then transform.
            let smooth = (!spec.smoothing.is_off()).then(|| spec.smoothing.apply(&ys).into_iter().map(|y| ty(spec.log_y, y)).collect());
            let raw = ys.iter().map(|&y| ty(spec.log_y, y)).collect();
            let sorted = series::is_sorted(&xs);
            Prepared { xs, raw, smooth, sorted }
        })
        .collect()
}

/// The data ranges: x over every finite point, y robust over the series (and bands).
fn ranges(spec: &ChartSpec, prep: &[Prepared]) -> ((f64, f64), (f64, f64)) {
    let mut x = (f64::INFINITY, f64::NEG_INFINITY);
    let mut upd = |v: f64| {
        if v.is_finite() {
            x = (x.0.min(v), x.1.max(v));
        }
    };
    for p in prep {
        p.xs.iter().for_each(|&v| upd(v));
    }
    for b in &spec.bands {
        b.points.iter().for_each(|p| upd(p.0));
    }
    if !x.0.is_finite() {
        x = (0.0, 1.0);
    } else if x.0 == x.1 {
        x = (x.0 - 0.5, x.1 + 0.5);
    }
    let x = series::drawable_range(x.0, x.1, 0.0);
    let mut ys: Vec<Vec<f64>> = Vec::new();
    for p in prep {
        ys.push(p.raw.clone());
        if let Some(s) = &p.smooth {
            ys.push(s.clone());
        }
    }
    for b in &spec.bands {
        ys.push(b.points.iter().flat_map(|p| [ty(spec.log_y, p.1), ty(spec.log_y, p.2)]).collect());
    }
    let refs: Vec<&[f64]> = ys.iter().map(|v| v.as_slice()).collect();
    let (lo, hi) = series::robust_range(&refs, spec.y_clip).unwrap_or((0.0, 1.0));
    (x, series::drawable_range(lo, hi, 0.05))
}

fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// Draw the chart on any plotters backend.
pub fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, spec: &ChartSpec) -> Result<()> {
    register_embedded_font()?;
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the chart: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let prep = prepare(spec);
    let ((x0, x1), (y0, y1)) = ranges(spec, &prep);
    let mut chart = ChartBuilder::on(root)
        .caption(&spec.title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    let log_y = spec.log_y;
    let axis = spec.x_axis;
    let yfmt = move |v: &f64| if log_y { fmt_num(10f64.powf(*v)) } else { fmt_num(*v) };
    let xfmt = move |v: &f64| fmt_x(axis, *v);
    chart
        .configure_mesh()
        .x_desc(spec.x_label.as_str())
        .y_desc(if log_y { format!("{} (log)", spec.y_label) } else { spec.y_label.clone() })
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    let columns = (chart.plotting_area().dim_in_pixel().0 as usize).max(1);
    // Keep drawn y inside the (possibly outlier-clipped) range.
    let clamp = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> { pts.into_iter().map(|(x, y)| (x, y.clamp(y0, y1))).collect() };

    for b in &spec.bands {
        let xs: Vec<f64> = b.points.iter().map(|p| p.0).collect();
        let lo: Vec<f64> = b.points.iter().map(|p| ty(log_y, p.1)).collect();
        let hi: Vec<f64> = b.points.iter().map(|p| ty(log_y, p.2)).collect();
        let sorted = series::is_sorted(&xs);
        let mut poly = clamp(series::m4_decimate(&xs, &hi, x0, x1, columns, sorted).points);
        let lower = clamp(series::m4_decimate(&xs, &lo, x0, x1, columns, sorted).points);
        poly.extend(lower.into_iter().rev());
        if poly.len() >= 3 {
            chart.draw_series(std::iter::once(Polygon::new(poly, rgb(b.color).mix(0.18).filled()))).map_err(e)?;
        }
    }
    for (s, p) in spec.series.iter().zip(&prep) {
        let color = rgb(s.color);
        let raw = series::m4_decimate(&p.xs, &p.raw, x0, x1, columns, p.sorted);
        let main = match &p.smooth {
            Some(sm) => {
                chart.draw_series(LineSeries::new(clamp(raw.points.clone()), color.mix(0.25).stroke_width(1))).map_err(e)?;
                series::m4_decimate(&p.xs, sm, x0, x1, columns, p.sorted).points
            }
            None => raw.points.clone(),
        };
        let name = s.name.clone();
        chart
            .draw_series(LineSeries::new(clamp(main), color.stroke_width(2)))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        // NaN/Inf (and, on log-y, values <= 0) can't be drawn as a line: mark where they
        // are along the top edge so a NaN burst stays visible.
        chart.draw_series(raw.non_finite_x.iter().map(|&x| Cross::new((x, y1), 4, color.stroke_width(2)))).map_err(e)?;
    }
    if spec.series.len() > 1 || spec.series.iter().any(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

/// The chart as an SVG document.
pub fn render_svg(spec: &ChartSpec) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (spec.width, spec.height)).into_drawing_area();
        draw(&root, spec)?;
    }
    Ok(out)
}

/// The chart as an RGB image.
pub fn render_rgb(spec: &ChartSpec) -> Result<image::RgbImage> {
    if spec.width == 0 || spec.height == 0 {
        bail!("chart size {}x{} is empty", spec.width, spec.height);
    }
    let mut buf = vec![255u8; spec.width as usize * spec.height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (spec.width, spec.height)).into_drawing_area();
        draw(&root, spec)?;
    }
    image::RgbImage::from_raw(spec.width, spec.height, buf).context("chart buffer size")
}

/// The chart as PNG bytes.
pub fn render_png(spec: &ChartSpec) -> Result<Vec<u8>> {
    let img = render_rgb(spec)?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).context("encoding the PNG")?;
    Ok(bytes.into_inner())
}

/// Write the chart to `path` (atomically), as PNG or SVG by its extension.
pub fn write_chart(spec: &ChartSpec, path: &Path) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase());
    let bytes = match ext.as_deref() {
        Some("png") => render_png(spec)?,
        Some("svg") => render_svg(spec)?.into_bytes(),
        _ => bail!("{}: the chart format is chosen by the extension: .png or .svg", path.display()),
    };
    crate::util::fsx::atomic_write(path, &bytes).with_context(|| format!("writing {}", path.display()))
}
