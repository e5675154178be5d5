//! console::resources: own process sampled (RSS > 0, CPU %), the no-GPU path, the panel.
use clipgan::console::resources::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn own_process_has_rss_and_cpu() {
    let me = std::process::id();
    let mut s = ProcSampler::new();
    let first = s.sample(&[(me, "me".into()), (u32::MAX - 1, "gone".into())]);
    assert!(first[0].rss_bytes.unwrap() > 0);
    assert_eq!(first[0].cpu_percent, None, "CPU % needs two samples");
    assert_eq!(first[1].rss_bytes, None);
    // Some work so that ticks advance (CPU % can still be 0 on a coarse clock).
    let mut x = 0u64;
    for i in 0..20_000_000u64 {
        x = x.wrapping_mul(31).wrapping_add(i);
    }
    std::hint::black_box(x);
    let second = s.sample(&[(me, "me".into())]);
    let cpu = second[0].cpu_percent.expect("CPU % on the second sample");
    assert!(cpu >= 0.0 && cpu.is_finite());
}

#[test]
fn no_driver_is_a_message() {
    let e = Gpus::init_from(Some(std::ffi::OsStr::new("/nonexistent/libnvidia-ml.so.1"))).err().expect("no NVML there");
    assert!(e.starts_with("no NVIDIA GPU / driver: "), "{e}");
    // With the default library: either GPUs, or the same kind of message.
    match Gpus::init() {
        Err(e) => assert!(e.starts_with(NO_GPU), "{e}"),
        Ok(mut g) => assert!(!g.sample(&mut []).unwrap().is_empty()),
    }
}

#[test]
fn monitor_samples_in_background() {
    let (tx, rx) = mpsc::channel();
    let m = ResourceMonitor::start(Duration::from_millis(20), move |s: &ResourceSnapshot| {
        let _ = tx.send(s.clone());
    });
    m.set_pids(vec![(std::process::id(), "me".into())]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let snap = loop {
        let s = rx.recv_timeout(Duration::from_secs(30)).expect("a sample");
        if s.procs.first().is_some_and(|p| p.cpu_percent.is_some()) {
            break s;
        }
        assert!(std::time::Instant::now() < deadline);
    };
    assert!(snap.procs[0].rss_bytes.unwrap() > 0);
    match &snap.gpus {
        Err(e) => assert!(e.starts_with(NO_GPU), "{e}"),
        Ok(g) => assert!(!g.is_empty()),
    }
    drop(m); // joins the thread
}

#[test]
fn panel_text() {
    let snap = ResourceSnapshot {
        procs: vec![ProcUsage {
            pid: 4242,
            label: "pretrain-small".into(),
            cpu_percent: Some(97.4),
            rss_bytes: Some(512 * 1024 * 1024),
            gpu_mem: vec![(0, 3 << 30)],
            gpu_util: vec![(0, 55)],
        }],
        gpus: Err("no NVIDIA GPU / driver: libnvidia-ml.so.1: cannot open shared object file".into()),
    };
    let mut t = Terminal::new(TestBackend::new(70, 3)).unwrap();
    t.draw(|f| f.render_widget(ResourcesPanel(&snap), f.area())).unwrap();
    let b = t.backend().buffer();
    let row = |y| (0..70).map(|x| b.cell((x, y)).unwrap().symbol().to_string()).collect::<String>();
    // On screen in a few words (the reason is in the help overlay); in full for the CLI.
    assert_eq!(row(0).trim_end(), "no NVIDIA GPU / driver (details: ?)");
    assert!(ResourcesPanel(&snap).lines()[0].to_string().starts_with("no NVIDIA GPU / driver: libnvidia-ml.so.1"));
    assert_eq!(row(1).trim_end(), "pretrain-small cpu  97% rss 512.0 MiB gpu0 3.0 GiB 55% pid 4242");
    let gpus = ResourceSnapshot {
        procs: vec![],
        gpus: Ok(vec![GpuUsage { index: 0, name: "H200".into(), util_percent: Some(7), mem_used: 1 << 30, mem_total: 140 << 30 }]),
    };
    assert_eq!(ResourcesPanel(&gpus).lines()[0].to_string(), "GPU0   7% 1.0 GiB/140.0 GiB H200");
    assert_eq!(human_bytes(1023), "1023 B");
}

#[test]
fn the_resources_command_prints_the_data_source_as_json() {
    // This test process is the watched "worker"; no NVML on purpose (the no-driver path).
    let me = std::process::id();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clipgan"))
        .args([
            "resources",
            "--pid",
            &me.to_string(),
            "--pid",
            &(u32::MAX - 1).to_string(),
            "--samples",
            "2",
            "--interval-ms",
            "200",
            "--json",
        ])
        .env(NVML_LIB_ENV, "/nonexistent/libnvidia-ml.so.1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["gpu_error"].as_str().unwrap().starts_with(NO_GPU), "{v}");
    assert!(v.get("gpus").is_none());
    let procs = v["procs"].as_array().unwrap();
    assert_eq!(procs[0]["pid"], me);
    assert!(procs[0]["rss_bytes"].as_u64().unwrap() > 0);
    assert!(procs[0]["cpu_percent"].as_f64().is_some(), "two samples give a CPU %: {v}");
    assert!(procs[1]["rss_bytes"].is_null(), "a process that does not exist has no memory: {v}");
    // Text: the panel's lines.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clipgan"))
        .args(["resources", "--pid", &me.to_string(), "--samples", "1"])
        .env(NVML_LIB_ENV, "/nonexistent/libnvidia-ml.so.1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(NO_GPU) && text.contains(&format!("pid {me} cpu    - rss ")), "{text}");
}
