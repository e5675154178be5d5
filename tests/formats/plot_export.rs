//! plot::export and plot::csv: the PNG decodes at the right size with curve pixels where
//! the curve is, the SVG holds the series, CSV round-trips; `clipgan plot` end to end.
use clipgan::plot::csv::{read_csv, write_csv};
use clipgan::plot::export::{render_png, render_svg, ChartSpec, SeriesSpec};
use clipgan::plot::series::Smoothing;
use clipgan::plot::Curve;
use std::process::Command;

fn spec(points: Vec<(f64, f64)>) -> ChartSpec {
    ChartSpec {
        title: "loss".into(),
        y_label: "loss".into(),
        series: vec![SeriesSpec { name: "run-a".into(), color: (214, 39, 40), points }],
        width: 400,
        height: 300,
        ..ChartSpec::default()
    }
}

fn is_red(p: &image::Rgb<u8>) -> bool {
    p.0[0] > 150 && p.0[1] < 100 && p.0[2] < 100
}

#[test]
fn png_decodes_at_size_with_the_curve_drawn() {
    // A flat line at y = 1 over a range 0..2: it crosses the plot's middle height.
    let mut pts: Vec<(f64, f64)> = (0..200).map(|i| (i as f64, 1.0)).collect();
    pts.push((200.0, 0.0));
    pts.push((201.0, 2.0));
    let png = render_png(&spec(pts)).unwrap();
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (400, 300));
    let red: Vec<(u32, u32)> = img.enumerate_pixels().filter(|(_, _, p)| is_red(p)).map(|(x, y, _)| (x, y)).collect();
    assert!(red.len() > 100, "only {} curve pixels", red.len());
    // Most red pixels lie on one row band (the flat line), in the middle of the plot area.
    let mut ys: Vec<u32> = red.iter().map(|p| p.1).collect();
    ys.sort();
    let median = ys[ys.len() / 2];
    assert!((100..200).contains(&median), "curve at row {median}");
    // Text was drawn (the embedded font): dark pixels outside the plot, left of it.
    let dark_left = img.enumerate_pixels().filter(|(x, _, p)| *x < 60 && p.0.iter().all(|&c| c < 90)).count();
    assert!(dark_left > 20, "no tick labels drawn ({dark_left} dark pixels)");
}

#[test]
fn smoothing_log_y_nan_and_band_render() {
    let pts: Vec<(f64, f64)> =
        (1..500).map(|i| (i as f64, if i == 250 { f64::NAN } else { 1.0 / i as f64 + (i % 7) as f64 * 1e-3 })).collect();
    let mut s = spec(pts);
    s.smoothing = Smoothing::Ema(0.9);
    s.log_y = true;
    s.bands.push(clipgan::plot::export::BandSpec {
        color: (31, 119, 180),
        points: (1..500).map(|i| (i as f64, 0.5 / i as f64, 2.0 / i as f64)).collect(),
    });
    let png = render_png(&s).unwrap();
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (400, 300));
    assert!(img.pixels().filter(|p| is_red(p)).count() > 50);
    let svg = render_svg(&s).unwrap();
    assert!(svg.contains("<polygon") || svg.contains("<path"), "no band in the SVG");
}

#[test]
fn svg_contains_the_series() {
    let pts: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, (i as f64 * 0.05).sin())).collect();
    let mut s = spec(pts);
    s.series.push(SeriesSpec {
        name: "run-b".into(),
        color: (31, 119, 180),
        points: (0..1000).map(|i| (i as f64, (i as f64 * 0.05).cos())).collect(),
    });
    let svg = render_svg(&s).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("run-a") && svg.contains("run-b"), "legend names missing");
    assert!(svg.contains("#D62728") || svg.contains("#d62728") || svg.contains("rgb(214,39,40)"), "series colour missing");
    assert!(svg.contains("<polyline"), "no curve");
    assert!(svg.contains("loss"), "title missing");
}

#[test]
fn csv_round_trip() {
    let curves = vec![
        Curve {
            run: "2026-a,1".into(),
            tag: "loss/\"g\"".into(),
            step: vec![0, 5, 10],
            wall: vec![1000.5, 1001.25, 1002.0],
            value: vec![0.1, f64::NAN, f64::INFINITY],
            t0: 1000.5,
        },
        Curve { run: "b".into(), tag: "fid".into(), step: vec![3], wall: vec![7.0], value: vec![-1e-300], t0: 6.0 },
    ];
    let mut buf = Vec::new();
    write_csv(&curves, &mut buf).unwrap();
    let back = read_csv(&buf[..], "mem.csv").unwrap();
    assert_eq!(back.len(), 2);
    for (a, b) in curves.iter().zip(&back) {
        assert_eq!((&a.run, &a.tag, &a.step, &a.wall), (&b.run, &b.tag, &b.step, &b.wall));
        assert_eq!(a.value.len(), b.value.len());
        for (x, y) in a.value.iter().zip(&b.value) {
            assert!(x == y || (x.is_nan() && y.is_nan()));
        }
        assert!((a.t0 - b.t0).abs() < 1e-9);
    }
    let err = read_csv(&b"run,tag\n"[..], "bad.csv").unwrap_err().to_string();
    assert!(err.contains("bad.csv:1"), "{err}");
    let err = read_csv(format!("{}\nr,t,1,2,x,3\n", clipgan::plot::csv::HEADER).as_bytes(), "bad.csv").unwrap_err().to_string();
    assert!(err.contains("bad.csv:2"), "{err}");
}

/// A run folder with a metrics.jsonl, one corrupt line and one torn last line.
fn fake_run(dir: &std::path::Path, name: &str, n: u64) -> std::path::PathBuf {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).unwrap();
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "{{\"step\":{i},\"epoch\":0,\"wall\":{},\"tag\":\"loss\",\"value\":{}}}\n",
            1000.0 + i as f64,
            1.0 / (1.0 + i as f64)
        ));
        s.push_str(&format!("{{\"step\":{i},\"epoch\":0,\"wall\":{},\"tag\":\"lr\",\"value\":0.001}}\n", 1000.0 + i as f64));
        if i == 3 {
            s.push_str("{not json\n");
        }
    }
    s.push_str("{\"step\":99");
    std::fs::write(run.join("metrics.jsonl"), s).unwrap();
    run
}

#[test]
fn plot_cli_png_svg_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fake_run(tmp.path(), "run-a", 50);
    let b = fake_run(tmp.path(), "run-b", 30);
    let bin = env!("CARGO_BIN_EXE_clipgan");
    for (ext, extra) in [("png", vec!["--smooth", "0.6", "--log-y"]), ("svg", vec!["--x", "rel"]), ("csv", vec![])] {
        let out = tmp.path().join(format!("o.{ext}"));
        let r = Command::new(bin)
            .env("CLIPGAN_HOME", tmp.path())
            .args(["plot", a.to_str().unwrap(), b.to_str().unwrap(), "--tag", "loss", "--out", out.to_str().unwrap()])
            .args(&extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(r.status.success(), "{ext}: {err}");
        assert!(err.contains("skipped 1 corrupt line"), "{err}");
        match ext {
            "png" => assert_eq!(image::open(&out).unwrap().to_rgb8().dimensions(), (1024, 640)),
            "svg" => assert!(std::fs::read_to_string(&out).unwrap().contains("run-b")),
            _ => {
                let c = read_csv(std::io::BufReader::new(std::fs::File::open(&out).unwrap()), "o.csv").unwrap();
                assert_eq!(c.iter().map(|c| (c.run.as_str(), c.len())).collect::<Vec<_>>(), vec![("run-a", 50), ("run-b", 30)]);
            }
        }
    }
    // A run name is looked up under CLIPGAN_HOME/runs; bad input is a clear error.
    let runs = tmp.path().join("runs");
    fake_run(&runs, "named", 5);
    let ok = Command::new(bin)
        .env("CLIPGAN_HOME", tmp.path())
        .args(["plot", "named", "--tag", "lr", "--out"])
        .arg(tmp.path().join("n.svg"))
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = Command::new(bin).env("CLIPGAN_HOME", tmp.path()).args(["plot", "nope", "--tag", "lr", "--out", "x.png"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope: not a run folder"));
    let bad = Command::new(bin)
        .env("CLIPGAN_HOME", tmp.path())
        .args(["plot", a.to_str().unwrap(), "--tag", "nosuch", "--out"])
        .arg(tmp.path().join("x.png"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no points for tag(s) nosuch"));
}
