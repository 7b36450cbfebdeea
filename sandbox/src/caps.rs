//! Clearing the calling thread's capability sets with the raw `capset` call: usable both in the
//! cloned child (no allocation, no glibc thread coordination) and on one supervisor thread
//! (glibc's wrappers would change every thread of the process).

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the effective, permitted and inheritable sets of the calling thread; returns the raw
/// result (0, or -1 with errno set).
pub(crate) fn clear_thread() -> libc::c_long {
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset with pid 0 changes the calling thread only; it reads a valid header and the
    // two data structs of the version 3 layout.
    unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) }
}
