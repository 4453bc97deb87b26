"""RuntimeDefault seccomp: the syscall filter a pod container gets unless
its securityContext says Unconfined.

The profile is Docker's default (moby/profiles seccomp v0.2.1, vendored
by moby/moby as vendor/github.com/moby/profiles/seccomp/default.json),
which containerd's RuntimeDefault (contrib/seccomp/seccomp_default.go)
follows, kept here as data in a compact form: every syscall not allowed
fails with EPERM; a few are allowed only for some arguments or only to a
container that keeps a capability.

libseccomp compiles it, because it knows each architecture's syscall
numbers and writes the BPF program that checks the architecture and the
arguments. A name this machine's libseccomp does not know is skipped, as
runc skips it (runc also answers ENOSYS to syscalls newer than its
libseccomp; here they fail with EPERM). Only the native architecture is
in the filter: a 32-bit (i386, x32) syscall kills the thread, where
Docker filters those too.

The program depends on the container's capabilities (CAP_SYS_ADMIN allows
mount, unshare, clone with new namespaces...), so there is one per set of
the capabilities that change it, compiled once per spawner process; a
container installs it with one prctl before it drops its capabilities
and execs.

Standard library only: the spawner runs this file's source next to
linux.py, rawnl.py and spawner.py, so module-level names carry a seccomp
prefix.
"""
import ctypes
import errno
import functools
import os

try:
    from ansible.module_utils.podnet.kernel.linux import libc
except ImportError:  # run as the spawner process: linux.py's source precedes this one
    pass

SECCOMP_LIBRARY = 'libseccomp.so.2'
SECCOMP_MISSING = ('the RuntimeDefault seccomp profile needs libseccomp (apt-get install '
                   'libseccomp2), or set seccompProfile type Unconfined')
SECCOMP_ACT_ALLOW, SECCOMP_ACT_ERRNO = 0x7fff0000, 0x00050000
SECCOMP_CMP_LT, SECCOMP_CMP_EQ, SECCOMP_CMP_GT, SECCOMP_CMP_MASKED_EQ = 2, 4, 6, 7
SECCOMP_FLTATR_CTL_OPTIMIZE, SECCOMP_OPTIMIZE_BINARY_TREE = 8, 2
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SECCOMP_BPF_INSTRUCTION = 8  # sizeof(struct sock_filter)

# Allowed to every container, whatever its architecture: names another
# architecture's kernel has (chown32, socketcall...) are skipped here.
SECCOMP_ALLOW = '''
    accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
    chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
    fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
    flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
    ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
    getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
    getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
    getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage
    getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
    getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl
    io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup
    io_submit ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
    lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr _llseek
    lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create
    memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect
    mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
    mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
    munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2
    pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll
    ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
    pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
    recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr removexattrat rename
    renameat renameat2 restart_syscall riscv_hwprobe rmdir rseq rt_sigaction rt_sigpending
    rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
    rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
    sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
    setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount
    statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
    process_vm_readv process_vm_writev ptrace
    arch_prctl modify_ldt
    arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls
'''  # the last three lines: Docker's "minKernel 4.8" rule, then x86's and ARM's own

# Capabilities (bits as in linux/capability.h) that allow more syscalls.
SECCOMP_CAP_BITS = {'DAC_READ_SEARCH': 2, 'SYS_MODULE': 16, 'SYS_RAWIO': 17, 'SYS_CHROOT': 18,
                    'SYS_PTRACE': 19, 'SYS_PACCT': 20, 'SYS_ADMIN': 21, 'SYS_BOOT': 22,
                    'SYS_NICE': 23, 'SYS_TIME': 25, 'SYS_TTY_CONFIG': 26, 'SYSLOG': 34,
                    'PERFMON': 38, 'BPF': 39}
SECCOMP_ALLOW_WITH_CAP = {
    'DAC_READ_SEARCH': 'open_by_handle_at',
    'SYS_ADMIN': '''bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie
                    lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr
                    move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname
                    sethostname setns syslog umount umount2 unshare''',
    'SYS_BOOT': 'reboot',
    'SYS_CHROOT': 'chroot',
    'SYS_MODULE': 'delete_module init_module finit_module',
    'SYS_PACCT': 'acct',
    'SYS_PTRACE': 'kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace',
    'SYS_RAWIO': 'iopl ioperm',
    'SYS_TIME': 'settimeofday stime clock_settime clock_settime64',
    'SYS_TTY_CONFIG': 'vhangup',
    'SYS_NICE': 'get_mempolicy mbind set_mempolicy set_mempolicy_home_node',
    'SYSLOG': 'syslog',
    'BPF': 'bpf',
    'PERFMON': 'perf_event_open',
}

# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID and NEWNET
SECCOMP_CLONE_NEW_NAMESPACES = 0x7E020000
# (action, syscall, comparisons of its arguments that must all hold); rules
# for one syscall add up: socket is allowed for every address family but
# AF_ALG and AF_VSOCK, personality for five personas.
SECCOMP_ARGUMENT_RULES = (
    (SECCOMP_ACT_ALLOW, 'socket', ((0, SECCOMP_CMP_LT, 38, 0),)),  # below AF_ALG
    (SECCOMP_ACT_ALLOW, 'socket', ((0, SECCOMP_CMP_EQ, 39, 0),)),  # AF_NFC
    (SECCOMP_ACT_ALLOW, 'socket', ((0, SECCOMP_CMP_GT, 40, 0),)),  # above AF_VSOCK
) + tuple((SECCOMP_ACT_ALLOW, 'personality', ((0, SECCOMP_CMP_EQ, persona, 0),))
          for persona in (0, 0x8, 0x20000, 0x20008, 0xffffffff))
# Without CAP_SYS_ADMIN: clone only without new namespaces; clone3, whose
# flags sit in memory that BPF cannot read, fails with ENOSYS, so that
# glibc falls back to clone.
SECCOMP_RULES_WITHOUT_SYS_ADMIN = (
    (SECCOMP_ACT_ALLOW, 'clone', ((0, SECCOMP_CMP_MASKED_EQ, SECCOMP_CLONE_NEW_NAMESPACES, 0),)),
    (SECCOMP_ACT_ERRNO | errno.ENOSYS, 'clone3', ()),
)


class SeccompArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp. MASKED_EQ reads datum_a as the mask and
    datum_b as the value."""
    _fields_ = [('arg', ctypes.c_uint), ('op', ctypes.c_int),
                ('datum_a', ctypes.c_uint64), ('datum_b', ctypes.c_uint64)]


class SeccompSockFprog(ctypes.Structure):
    """struct sock_fprog; ctypes pads `filter` to offset 8, as C does."""
    _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]


SECCOMP_PRCTL = libc.prctl  # looked up once, not in each container
SECCOMP_INSTALL_HINTS = {errno.EACCES: ' (the caller needs CAP_SYS_ADMIN or no_new_privs)',
                         errno.EINVAL: ' (not a valid filter, or more than 4096 instructions)'}


def seccomp_program(caps):
    """The RuntimeDefault BPF program (struct sock_filter array) for a
    container that keeps the capability numbers in caps. Compiled once per
    set of the capabilities that change it: most containers share one."""
    return _seccomp_compiled(frozenset(caps) & frozenset(SECCOMP_CAP_BITS.values()))


def install_seccomp(program):
    """Load program as the calling thread's seccomp filter. It works without
    no_new_privs because the caller still holds CAP_SYS_ADMIN; the filter
    stays through the capability drop and the exec that follow."""
    instructions = ctypes.create_string_buffer(program, len(program))
    fprog = SeccompSockFprog(len(program) // SECCOMP_BPF_INSTRUCTION,
                             ctypes.addressof(instructions))
    if SECCOMP_PRCTL(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                     ctypes.byref(fprog), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, 'installing the RuntimeDefault seccomp filter: %s%s'
                      % (os.strerror(err), SECCOMP_INSTALL_HINTS.get(err, '')))


def seccomp_rules(relevant_caps):
    """(action, syscall name, argument comparisons) for a container that
    holds relevant_caps (bit numbers), the plain allow rules first."""
    held = {name for name, bit in SECCOMP_CAP_BITS.items() if bit in relevant_caps}
    allowed = set(SECCOMP_ALLOW.split())
    for name in held:
        allowed.update(SECCOMP_ALLOW_WITH_CAP[name].split())
    rules = [(SECCOMP_ACT_ALLOW, name, ()) for name in sorted(allowed)]
    rules.extend(SECCOMP_ARGUMENT_RULES)
    if 'SYS_ADMIN' not in held:
        rules.extend(SECCOMP_RULES_WITHOUT_SYS_ADMIN)
    return rules


@functools.lru_cache(maxsize=None)
def _seccomp_compiled(relevant_caps):
    """Memoized: one spawner process starts many containers."""
    library = _seccomp_library()
    context = library.seccomp_init(SECCOMP_ACT_ERRNO | errno.EPERM)
    if not context:
        raise OSError(errno.ENOMEM, 'seccomp_init failed')
    try:
        # A binary search on the syscall number instead of a list: the kernel
        # takes half the time to load it at each container's prctl.
        _seccomp_ok(library.seccomp_attr_set(context, SECCOMP_FLTATR_CTL_OPTIMIZE,
                                             SECCOMP_OPTIMIZE_BINARY_TREE), 'optimize')
        for action, name, comparisons in seccomp_rules(relevant_caps):
            _seccomp_add_rule(library, context, action, name, comparisons)
        return _seccomp_export(library, context)
    finally:
        library.seccomp_release(context)


def _seccomp_library():
    """libseccomp with its prototypes, loaded on first compile: a node
    without it still runs Unconfined containers."""
    try:
        library = ctypes.CDLL(SECCOMP_LIBRARY)
    except OSError as exc:
        raise OSError('%s: %s' % (SECCOMP_MISSING, exc)) from exc
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = [ctypes.c_uint32]
    library.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(SeccompArgCmp)]
    library.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    library.seccomp_release.argtypes = [ctypes.c_void_p]
    return library


def _seccomp_add_rule(library, context, action, name, comparisons):
    """One rule; a name this architecture lacks (libseccomp answers with a
    negative number) is skipped. seccomp_rule_add_array, because ctypes
    cannot pass the variadic form's structs by value."""
    number = library.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        return
    array = (SeccompArgCmp * len(comparisons))(*(SeccompArgCmp(*cmp) for cmp in comparisons))
    _seccomp_ok(library.seccomp_rule_add_array(context, action, number, len(comparisons), array),
                'rule for ' + name)


def _seccomp_export(library, context):
    """The compiled program, through a memfd: libseccomp 2.5 writes it to
    a file descriptor only."""
    with os.fdopen(os.memfd_create('podnet-seccomp'), 'rb') as exported:
        _seccomp_ok(library.seccomp_export_bpf(context, exported.fileno()), 'export')
        exported.seek(0)
        return exported.read()


def _seccomp_ok(result, what):
    """libseccomp reports failure as a negative errno."""
    if result < 0:
        raise OSError(-result, 'libseccomp %s: %s' % (what, os.strerror(-result)))
