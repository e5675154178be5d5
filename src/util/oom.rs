//! Out of memory as an error, not a panic: libtorch's failed allocations reach Rust as
//! panics (tch unwraps its `f_` results inside `nn` and most tensor methods), so the
//! boundaries of jobs and commands catch those panics and say how much was asked for.
//! Any other panic goes on unwinding: only allocation failures are turned into errors.
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Nesting of [`catch_out_of_memory`] on this thread: while above 0, the panic hook
    /// stays silent for allocation failures (the caller reports them as an error).
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Run `f`; an allocation failure inside it (CPU or CUDA) becomes an error naming the
/// size asked for. Other panics are resumed unchanged.
pub fn catch_out_of_memory<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    install_quiet_hook();
    CATCHING.with(|c| c.set(c.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    match result {
        Ok(r) => r,
        Err(payload) => match describe_out_of_memory(&payload_text(payload.as_ref())) {
            Some(message) => Err(anyhow::anyhow!(message)),
            None => panic::resume_unwind(payload),
        },
    }
}

/// The panic hook, wrapped once per process: silent for allocation failures that a
/// [`catch_out_of_memory`] on the same thread will report; the previous hook otherwise.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let caught = CATCHING.with(|c| c.get() > 0);
            if caught && describe_out_of_memory(&payload_text(info.payload())).is_some() {
                return;
            }
            previous(info);
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else {
        String::new()
    }
}

/// The message for a panic text that is an allocation failure, else None. Recognises
/// c10's CPU allocator ("can't allocate memory: you tried to allocate N bytes") and the
/// CUDA caching allocator ("CUDA out of memory. Tried to allocate 2.00 GiB").
pub fn describe_out_of_memory(text: &str) -> Option<String> {
    let advice = "lower the model sizes (GAN.GF_DIM, GAN.DF_DIM, TEXT.EMBEDDING_DIM, ...) or TRAIN.BATCH_SIZE, or free memory";
    if let Some(at) = text.find("you tried to allocate ") {
        let digits: String = text[at + "you tried to allocate ".len()..].chars().take_while(char::is_ascii_digit).collect();
        let size =
            digits.parse::<u64>().map(|b| format!("{} ({b} bytes)", human_bytes(b))).unwrap_or_else(|_| "more than is available".into());
        return Some(format!("out of memory: the model needs {size} in one allocation, which the CPU's memory cannot give; {advice}"));
    }
    if let Some(at) = text.find("out of memory. Tried to allocate ") {
        let rest = &text[at + "out of memory. Tried to allocate ".len()..];
        let mut words = rest.split_whitespace();
        let size = format!("{} {}", words.next().unwrap_or("?"), words.next().unwrap_or("").trim_end_matches(['.', ',', ')', '"']));
        return Some(format!("out of memory: the model needs {size} more GPU memory than is free; {advice}"));
    }
    None
}

/// Bytes in GB (10^9) with one decimal, as memory sizes are usually quoted.
fn human_bytes(b: u64) -> String {
    if b >= 1_000_000_000 {
        format!("{:.1} GB", b as f64 / 1e9)
    } else {
        format!("{:.1} MB", b as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c10_and_cuda_messages_name_the_size() {
        let cpu = "called `Result::unwrap()` on an `Err` value: Torch(\"[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 409600000000 bytes. Error code 12\")";
        let m = describe_out_of_memory(cpu).unwrap();
        assert!(m.contains("409.6 GB (409600000000 bytes)"), "{m}");
        let cuda = "Torch(\"CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.1 GiB\")";
        let m = describe_out_of_memory(cuda).unwrap();
        assert!(m.contains("20.00 GiB more GPU memory"), "{m}");
        assert_eq!(describe_out_of_memory("index out of bounds"), None);
    }

    /// A real libtorch allocation that cannot succeed (256 TiB: more than a 47-bit
    /// address space holds, whatever the overcommit policy) is an error, not a panic.
    #[test]
    fn a_failed_libtorch_allocation_is_an_error() {
        let r = catch_out_of_memory(|| Ok(tch::Tensor::empty([1i64 << 48], (tch::Kind::Uint8, tch::Device::Cpu)).numel()));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("out of memory: the model needs 281475.0 GB (281474976710656 bytes)"), "{e}");
    }

    #[test]
    fn other_panics_still_panic() {
        let r = std::panic::catch_unwind(|| catch_out_of_memory::<()>(|| panic!("not memory")));
        assert!(r.is_err());
    }
}
