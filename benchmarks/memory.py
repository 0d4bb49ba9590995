"""Peak resident memory of the current process, shared by the benchmark scripts."""


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory (`VmHWM`), in MiB.

    `resource.getrusage(...).ru_maxrss` is not used: on Linux a child started by `subprocess` inherits the parent's
    value across `exec`, so a light child of a heavy parent would report the parent's peak. `VmHWM` belongs to the
    process's own address space and starts afresh at `exec`.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status (Linux only).")
