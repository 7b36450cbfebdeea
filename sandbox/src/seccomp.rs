//! The seccomp filter: a deny list of what coding agents never need, compiled to classic BPF.
//!
//! Why not `seccompiler`: it gives one match action per filter (here EPERM, ENOSYS,
//! EAFNOSUPPORT and user notification are needed side by side), cannot emit
//! `SECCOMP_RET_USER_NOTIF`, and has no check for the x32 syscall range. The program below is a
//! flat list of `syscall == N -> action` tests with short forward jumps only, built and checked
//! in the parent, and small enough to read in full in the unit tests.

use libc::sock_filter;

const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_ALU_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// Low 32 bits of argument `i` (x86_64 and aarch64 are little-endian).
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const NOTIFY: u32 = libc::SECCOMP_RET_USER_NOTIF;
const fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA)
}

const fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Every namespace flag of clone(2); a clone asking for any of them is refused.
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32
    | 0x80; // CLONE_NEWTIME

/// System calls denied outright with EPERM: debugging other processes, mounting, namespaces,
/// kernel objects agents never need, and privileged host controls.
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_keyctl,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_quotactl,
    libc::SYS_fanotify_init,
    libc::SYS_lookup_dcookie,
    libc::SYS_vhangup,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// Calls that create names in the filesystem: sent to the supervisor, which checks the target
/// against the protected paths and performs the call itself (see `notify`).
#[cfg(target_arch = "x86_64")]
const CREATING: &[libc::c_long] = &[
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_creat,
];

/// What the filter does with the calls that create filesystem names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Creation {
    /// Let them through (no protected paths, or the operator accepted that downgrade).
    Allow,
    /// Hand them to the user-space supervisor.
    Notify,
}

/// The filter program, for the architecture cordon was built for.
pub(crate) fn program(creation: Creation) -> Vec<sock_filter> {
    let mut p = Vec::with_capacity(160);
    // A foreign architecture (i386 through int 0x80 on x86_64) is killed: the numbers below
    // would mean other calls there.
    p.push(stmt(BPF_LD_W_ABS, OFF_ARCH));
    p.push(jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0));
    p.push(stmt(BPF_RET_K, KILL));
    p.push(stmt(BPF_LD_W_ABS, OFF_NR));
    // The x32 ABI shares x86_64's arch value but sets bit 30 of the number.
    p.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1));
    p.push(stmt(BPF_RET_K, errno(libc::EPERM)));

    for nr in DENIED {
        deny(&mut p, *nr, errno(libc::EPERM));
    }
    // clone3 hides its flags in a struct the filter cannot read: ENOSYS makes libcs fall back
    // to clone, whose flags it can.
    deny(&mut p, libc::SYS_clone3, errno(libc::ENOSYS));
    // openat2 likewise hides its flags; libcs do not need it.
    deny(&mut p, libc::SYS_openat2, errno(libc::ENOSYS));

    // clone(flags, ...): refuse namespace flags.
    block(
        &mut p,
        libc::SYS_clone,
        &[
            stmt(BPF_LD_W_ABS, arg_lo(0)),
            jump(BPF_JSET_K, CLONE_NS_FLAGS, 0, 1),
            stmt(BPF_RET_K, errno(libc::EPERM)),
        ],
    );
    // socket(domain, type, protocol): unix, inet and inet6 (no raw or packet types), and
    // netlink for routing queries only (getaddrinfo uses it); every other family is refused.
    let socket_rules = socket_block();
    block(&mut p, libc::SYS_socket, &socket_rules);
    block(
        &mut p,
        libc::SYS_socketpair,
        &[
            stmt(BPF_LD_W_ABS, arg_lo(0)),
            jump(BPF_JEQ_K, libc::AF_UNIX as u32, 0, 1),
            stmt(BPF_RET_K, ALLOW),
            stmt(BPF_RET_K, errno(libc::EAFNOSUPPORT)),
        ],
    );
    // personality: reading it (0xffffffff) and the default (PER_LINUX) only.
    block(
        &mut p,
        libc::SYS_personality,
        &[
            stmt(BPF_LD_W_ABS, arg_lo(0)),
            jump(BPF_JEQ_K, 0xffff_ffff, 2, 0),
            jump(BPF_JEQ_K, 0, 1, 0),
            stmt(BPF_RET_K, errno(libc::EPERM)),
            stmt(BPF_RET_K, ALLOW),
        ],
    );
    // ioctl: no faking terminal input (TIOCSTI) or console tricks (TIOCLINUX). The kernel reads
    // the request as 32 bits, so the low word is the whole request.
    block(
        &mut p,
        libc::SYS_ioctl,
        &[
            stmt(BPF_LD_W_ABS, arg_lo(1)),
            jump(BPF_JEQ_K, libc::TIOCSTI as u32, 1, 0),
            jump(BPF_JEQ_K, libc::TIOCLINUX as u32, 0, 1),
            stmt(BPF_RET_K, errno(libc::EPERM)),
        ],
    );

    if creation == Creation::Notify {
        #[cfg(target_arch = "x86_64")]
        for nr in CREATING {
            deny(&mut p, *nr, NOTIFY);
        }
        // open/openat with O_CREAT may create a name; without it they cannot, and existing
        // protected files are read-only mounts.
        #[cfg(target_arch = "x86_64")]
        block(&mut p, libc::SYS_open, &flag_block(1));
        block(&mut p, libc::SYS_openat, &flag_block(2));
    }
    p.push(stmt(BPF_RET_K, ALLOW));
    p
}

fn flag_block(arg: u32) -> [sock_filter; 3] {
    [
        stmt(BPF_LD_W_ABS, arg_lo(arg)),
        jump(BPF_JSET_K, libc::O_CREAT as u32, 0, 1),
        stmt(BPF_RET_K, NOTIFY),
    ]
}

/// socket(domain, type, protocol). Jump targets are counted from the next instruction.
fn socket_block() -> Vec<sock_filter> {
    let raw = libc::SOCK_RAW as u32;
    // SOCK_PACKET (10), the obsolete packet-socket type.
    let packet = 10u32;
    vec![
        /* 0 */ stmt(BPF_LD_W_ABS, arg_lo(0)),
        /* 1 */ jump(BPF_JEQ_K, libc::AF_UNIX as u32, 8, 0), // -> 10 allow
        /* 2 */ jump(BPF_JEQ_K, libc::AF_INET as u32, 2, 0), // -> 5 type
        /* 3 */ jump(BPF_JEQ_K, libc::AF_INET6 as u32, 1, 0), // -> 5 type
        /* 4 */
        jump(BPF_JEQ_K, libc::AF_NETLINK as u32, 6, 8), // -> 11 netlink : 13 refuse
        /* 5 */ stmt(BPF_LD_W_ABS, arg_lo(1)),
        /* 6 */ stmt(BPF_ALU_AND_K, 0xf), // without SOCK_NONBLOCK / SOCK_CLOEXEC
        /* 7 */ jump(BPF_JEQ_K, raw, 1, 0), // -> 9
        /* 8 */ jump(BPF_JEQ_K, packet, 0, 1), // -> 9 : 10
        /* 9 */ stmt(BPF_RET_K, errno(libc::EPERM)),
        /* 10 */ stmt(BPF_RET_K, ALLOW),
        /* 11 */ stmt(BPF_LD_W_ABS, arg_lo(2)),
        /* 12 */ jump(BPF_JEQ_K, 0, 1, 0), // NETLINK_ROUTE -> 14
        /* 13 */ stmt(BPF_RET_K, errno(libc::EAFNOSUPPORT)),
        /* 14 */ stmt(BPF_RET_K, ALLOW),
    ]
}

/// `nr -> action`, two instructions, no long jump.
fn deny(p: &mut Vec<sock_filter>, nr: libc::c_long, action: u32) {
    p.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
    p.push(stmt(BPF_RET_K, action));
}

/// `nr -> body`; a body that falls off its end allows the call. The syscall number is reloaded
/// afterwards because bodies load arguments.
fn block(p: &mut Vec<sock_filter>, nr: libc::c_long, body: &[sock_filter]) {
    let skip = u8::try_from(body.len() + 1).unwrap_or(u8::MAX);
    p.push(jump(BPF_JEQ_K, nr as u32, 0, skip));
    p.extend_from_slice(body);
    p.push(stmt(BPF_RET_K, ALLOW));
    p.push(stmt(BPF_LD_W_ABS, OFF_NR));
}
