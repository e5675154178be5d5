//! console::images: halfblocks and ASCII output (TestBackend), the background loader,
//! a corrupt PNG shown as an error in the pane, the protocol override.
use clipgan::console::images::*;
use ratatui::backend::TestBackend;
use ratatui::layout::Size;
use ratatui::style::Color;
use ratatui::Terminal;
use std::sync::mpsc;
use std::time::Duration;

/// Top half red, bottom half blue.
fn two_band_png(dir: &std::path::Path) -> std::path::PathBuf {
    let img = image::RgbImage::from_fn(20, 40, |_, y| if y < 20 { image::Rgb([255, 0, 0]) } else { image::Rgb([0, 0, 255]) });
    let p = dir.join("s.png");
    img.save(&p).unwrap();
    p
}

fn draw(pane: &ImagePane, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| f.render_widget(pane, f.area())).unwrap();
    t.backend().buffer().clone()
}

/// Show `path` in a pane and wait (bounded) for the loader's result.
fn load(picker: ImagePicker, path: &std::path::Path, size: Size) -> ImagePane {
    let (tx, rx) = mpsc::channel();
    let mut loader = ImageLoader::new(picker, move || {
        let _ = tx.send(());
    });
    let mut pane = ImagePane::new(0);
    pane.show(&mut loader, path, size, None);
    assert!(matches!(pane.state, PaneState::Loading(_)));
    let buf = draw(&pane, 30, 3);
    assert!(format!("{buf:?}").contains("loading s"), "no loading placeholder");
    rx.recv_timeout(Duration::from_secs(60)).expect("the loader answered");
    assert!(pane.update(&loader));
    pane
}

#[test]
fn halfblocks_in_test_backend() {
    let tmp = tempfile::tempdir().unwrap();
    let p = two_band_png(tmp.path());
    let pane = load(ImagePicker::halfblocks(), &p, Size::new(10, 10));
    assert!(matches!(pane.state, PaneState::Ready(_)), "{:?}", pane.state);
    let buf = draw(&pane, 12, 12);
    // Halfblocks' cell is 10x20 px: the 20x40 image (1:2) is enlarged to fill the 10x10
    // cells (100x200 px), red over blue, each band 5 rows.
    // A cell whose two halves have one colour is drawn as a space on that background.
    let c = |x, y| buf.cell((x, y)).unwrap().clone();
    let (red, blue) = (Color::Rgb(255, 0, 0), Color::Rgb(0, 0, 255));
    // The encoder resizes with a smoothing filter: pure colours away from the boundary,
    // blended next to it.
    let rgb = |col: Color| match col {
        Color::Rgb(r, g, b) => (r, g, b),
        other => panic!("not RGB: {other:?}"),
    };
    for x in 0..10 {
        for y in 0..4 {
            assert_eq!(c(x, y).bg, red, "cell {x},{y}");
            assert_eq!(c(x, y + 6).bg, blue, "cell {x},{}", y + 6);
        }
        let ((r4, _, b4), (r5, _, b5)) = (rgb(c(x, 4).bg), rgb(c(x, 5).bg));
        assert!(r4 > b4 && b5 > r5, "row 4 mostly red, row 5 mostly blue");
    }
    assert_eq!((c(10, 0).symbol(), c(10, 0).bg), (" ", Color::Reset), "drawn outside the image");
    assert_eq!((c(0, 10).symbol(), c(0, 10).bg), (" ", Color::Reset), "drawn outside the image");
}

#[test]
fn ascii_luminance_rendering() {
    // Left half black, right half white; a grey middle band row.
    let img = image::RgbImage::from_fn(8, 6, |x, y| {
        if (2..4).contains(&y) {
            image::Rgb([128, 128, 128])
        } else if x < 4 {
            image::Rgb([0, 0, 0])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let lines = ascii_lines(&image::DynamicImage::ImageRgb8(img.clone()), 8, 3);
    // Grey 128: luminance 0.502 of the 10-step ramp = index 5.
    assert_eq!(lines, vec!["    @@@@", "++++++++", "    @@@@"]);
    // Aspect kept: a square image in a wide area is twice as wide as tall in cells.
    let sq = image::DynamicImage::ImageRgb8(image::RgbImage::new(10, 10));
    let l = ascii_lines(&sq, 40, 5);
    assert_eq!((l.len(), l[0].len()), (5, 10));
    assert!(ascii_lines(&sq, 0, 5).is_empty());

    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("s.png");
    img.save(&p).unwrap();
    let pane = load(ImagePicker::ascii(), &p, Size::new(8, 3));
    let buf = draw(&pane, 10, 3);
    let row = |y| (0..10).map(|x| buf.cell((x, y)).unwrap().symbol().to_string()).collect::<String>();
    assert_eq!(row(0), "    @@@@  ");
    assert_eq!(row(1), "++++++++  ");
}

#[test]
fn corrupt_and_missing_images_are_errors_in_the_pane() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("s.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    let pane = load(ImagePicker::halfblocks(), &bad, Size::new(20, 10));
    match &pane.state {
        PaneState::Failed(e) => assert!(e.contains("s.png") && e.contains("not a readable image"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    let text = format!("{:?}", draw(&pane, 60, 4));
    assert!(text.contains("image error"), "{text}");
    let pane = load(ImagePicker::ascii(), &tmp.path().join("missing").join("s.png"), Size::new(20, 10));
    assert!(matches!(pane.state, PaneState::Failed(_)));
}

#[test]
fn newest_request_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let p = two_band_png(tmp.path());
    let (tx, rx) = mpsc::channel();
    let mut loader = ImageLoader::new(ImagePicker::halfblocks(), move || {
        let _ = tx.send(());
    });
    let mut pane = ImagePane::new(3);
    // Scrubbing: many sizes in a row; the pane ends showing the last one.
    for w in 4..12 {
        pane.show(&mut loader, &p, Size::new(w, w), None);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !pane.update(&loader) {
        let _ = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
        assert!(std::time::Instant::now() < deadline, "no result");
    }
    assert!(matches!(pane.state, PaneState::Ready(_)));
}

#[test]
fn protocol_override_parsing() {
    assert_eq!("kitty".parse::<ImageProtocol>(), Ok(ImageProtocol::Kitty));
    assert_eq!("ASCII".parse::<ImageProtocol>(), Ok(ImageProtocol::Ascii));
    assert_eq!("".parse::<ImageProtocol>(), Ok(ImageProtocol::Auto));
    assert!("png".parse::<ImageProtocol>().unwrap_err().contains("CLIPGAN_IMAGE_PROTOCOL=png"));
    // These two never query the terminal.
    assert_eq!(ImagePicker::detect(ImageProtocol::Halfblocks).name(), "halfblocks");
    assert_eq!(ImagePicker::detect(ImageProtocol::Ascii).name(), "ascii");
}

/// A pipe standing in for the terminal's input side.
fn pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    std::io::pipe().unwrap()
}

fn rest_of(mut r: std::io::PipeReader, w: std::io::PipeWriter) -> String {
    drop(w);
    let mut s = String::new();
    std::io::Read::read_to_string(&mut r, &mut s).unwrap();
    s
}

#[test]
fn terminal_query_reads_the_answers_and_leaves_later_keys_alone() {
    use std::io::Write;
    use std::os::fd::AsFd;
    let (r, mut w) = pipe();
    // kitty graphics OK, DA1 with sixel (4), cell size 10x20 px, status; then keys.
    w.write_all(b"\x1b_Gi=31;OK\x1b\\\x1b[?62;4;22c\x1b[6;20;10t\x1b[0n2q").unwrap();
    let mut out = Vec::new();
    let a = query(r.as_fd(), &mut out, false, Duration::from_secs(5)).unwrap();
    assert_eq!(a, TermAnswer { kitty: true, sixel: true, cell: Some((10, 20)), complete: true, typed: Vec::new(), version: None });
    assert_eq!(a.protocol(), ratatui_image::picker::ProtocolType::Kitty);
    let q = String::from_utf8(out).unwrap();
    assert!(q.contains("_Gi=31") && q.contains("[16t") && q.ends_with("\x1b[5n"), "{q:?}");
    assert_eq!(rest_of(r, w), "2q", "keys typed after the answer stay for the console");
}

#[test]
fn terminal_query_times_out_without_taking_keys_typed_later() {
    use std::io::Write;
    use std::os::fd::AsFd;
    let (r, mut w) = pipe();
    let t = std::time::Instant::now();
    let a = query(r.as_fd(), &mut Vec::new(), true, Duration::from_millis(200)).unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(a, TermAnswer::default(), "no answer, nothing claimed");
    // Nothing keeps reading after the timeout: a key typed now is still there.
    w.write_all(b"j").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(rest_of(r, w), "j");
}

#[test]
fn terminal_query_with_only_a_status_answer_is_halfblocks_material() {
    use std::io::Write;
    use std::os::fd::AsFd;
    let (r, mut w) = pipe();
    // A terminal with no graphics: DA1 without 4, no cell size, the status.
    w.write_all(b"\x1b[?1;2c\x1b[0n").unwrap();
    let a = query(r.as_fd(), &mut Vec::new(), false, Duration::from_secs(5)).unwrap();
    assert_eq!(a, TermAnswer { complete: true, ..Default::default() });
    if std::env::var("TERM_PROGRAM").is_err() && std::env::var("LC_TERMINAL").is_err() {
        assert_eq!(a.protocol(), ratatui_image::picker::ProtocolType::Halfblocks);
    }
    assert_eq!(rest_of(r, w), "");
}

#[test]
fn keys_typed_during_the_query_are_kept_for_the_console() {
    use std::io::Write;
    use std::os::fd::AsFd;
    let (r, mut w) = pipe();
    // "2" typed before the answers, "j" and an arrow key between them, "q" after.
    w.write_all(b"2\x1b[?62;4c j\x1b[A\x1b_Gi=31;OK\x1b\\\x1b[0nq").unwrap();
    let a = query(r.as_fd(), &mut Vec::new(), false, Duration::from_secs(5)).unwrap();
    assert!(a.complete && a.sixel && a.kitty);
    assert_eq!(a.typed, b"2 j", "text outside escape sequences; the arrow is dropped");
    assert_eq!(rest_of(r, w), "q");
    use clipgan::console::event::keys_from_bytes;
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    let keys = keys_from_bytes(b"2\r\x03Q\x1b");
    let codes: Vec<(KeyCode, KeyModifiers)> = keys.iter().map(|k| (k.code, k.modifiers)).collect();
    assert_eq!(
        codes,
        vec![
            (KeyCode::Char('2'), KeyModifiers::NONE),
            (KeyCode::Enter, KeyModifiers::NONE),
            (KeyCode::Char('c'), KeyModifiers::CONTROL),
            (KeyCode::Char('Q'), KeyModifiers::SHIFT),
        ]
    );
}

#[test]
fn an_old_kitty_gets_halfblocks_and_a_new_one_kitty() {
    use std::io::Write;
    use std::os::fd::AsFd;
    // Debian 12's kitty: answers XTVERSION, the graphics query and the cell size.
    for (version, sixel, want) in [
        ("kitty(0.26.5)", false, ratatui_image::picker::ProtocolType::Halfblocks),
        ("kitty(0.26.5)", true, ratatui_image::picker::ProtocolType::Sixel),
        ("kitty(0.28.1)", false, ratatui_image::picker::ProtocolType::Kitty),
        ("kitty(0.43.1)", false, ratatui_image::picker::ProtocolType::Kitty),
    ] {
        let (r, mut w) = pipe();
        let da = if sixel { "\x1b[?62;4c" } else { "\x1b[?62;c" };
        w.write_all(format!("\x1bP>|{version}\x1b\\\x1b_Gi=31;OK\x1b\\{da}\x1b[6;18;9t\x1b[0nk").as_bytes()).unwrap();
        let mut out = Vec::new();
        let a = query(r.as_fd(), &mut out, false, Duration::from_secs(5)).unwrap();
        assert_eq!(a.version.as_deref(), Some(version));
        assert!(a.kitty && a.complete && a.typed.is_empty(), "{a:?}");
        assert_eq!(a.protocol(), want, "{version} sixel={sixel}");
        assert_eq!(a.kitty_too_old().is_some(), version.contains("0.26"));
        assert!(String::from_utf8(out).unwrap().starts_with("\x1b[>0q"), "XTVERSION is asked first");
        assert_eq!(rest_of(r, w), "k");
    }
    // Other terminals' versions are not kitty's.
    let xterm = TermAnswer { kitty: true, version: Some("XTerm(379)".into()), ..Default::default() };
    assert_eq!(xterm.kitty_too_old(), None);
}
