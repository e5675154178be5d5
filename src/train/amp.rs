//! Mixed precision: bf16 autocast (CLIPGAN.AMP).
//!
//! tch's `autocast` only switches CUDA autocast on with libtorch's default dtype
//! (float16) and cannot choose bf16. libtorch's C++ API can (`set_autocast_dtype`), but
//! tch does not bind it, so the few functions needed are declared here by their C++
//! symbol names (libtorch_cpu exports them; c10::DeviceType and c10::ScalarType are
//! `enum class : int8_t`, passed like `i8`). tests/models/clip_losses.rs checks the binding on
//! the CPU (where autocast works the same way): a matmul inside gives bf16.
use tch::Device;

#[allow(improper_ctypes)]
extern "C" {
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn at_set_autocast_enabled(device: i8, enabled: bool);
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn at_is_autocast_enabled(device: i8) -> bool;
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_set_autocast_dtype(device: i8, dtype: i8);
    #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
    fn at_get_autocast_dtype(device: i8) -> i8;
}

// c10::DeviceType and c10::ScalarType values.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
const SCALAR_BF16: i8 = 15;

/// Run `f` with bf16 autocast on `device` when `enabled` (matmuls, convolutions and
/// attention in bf16; reductions, softmax, norms and losses in f32, by libtorch's
/// autocast policy). Restores the previous state afterwards. With `enabled` false, or
/// on a device kind without autocast (MPS, ...), it just runs `f`.
pub fn autocast_bf16<T>(device: Device, enabled: bool, f: impl FnOnce() -> T) -> T {
    let dev = match device {
        Device::Cpu => DEVICE_CPU,
        Device::Cuda(_) => DEVICE_CUDA,
        _ => return f(),
    };
    if !enabled {
        return f();
    }
    // SAFETY: plain libtorch calls with valid enum values; state is thread-local.
    let (prev_enabled, prev_dtype) = unsafe { (at_is_autocast_enabled(dev), at_get_autocast_dtype(dev)) };
    unsafe {
        at_set_autocast_dtype(dev, SCALAR_BF16);
        at_set_autocast_enabled(dev, true);
        torch_sys::at_autocast_increment_nesting();
    }
    let out = f();
    unsafe {
        if torch_sys::at_autocast_decrement_nesting() == 0 {
            torch_sys::at_autocast_clear_cache();
        }
        at_set_autocast_enabled(dev, prev_enabled);
        at_set_autocast_dtype(dev, prev_dtype);
    }
    out
}
