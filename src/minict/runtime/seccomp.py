"""linux.seccomp of config.json as a BPF filter, built and loaded by libseccomp (through pyseccomp).

libseccomp resolves syscall names per architecture and lays out the BPF
program, which is why minict does not assemble the filter itself. Names this
libseccomp does not know are skipped, as runc and crun skip them, so a
profile written for a newer kernel still loads.
"""

from __future__ import annotations

import errno

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": "CTL_TSYNC", "SECCOMP_FILTER_FLAG_LOG": "CTL_LOG",
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": "CTL_SSB"}


class SeccompError(Exception):
    pass


def _action(seccomp, name: str, errno_ret: int | None):
    if name not in ACTIONS:
        if name == "SCMP_ACT_NOTIFY":
            raise SeccompError("seccomp action SCMP_ACT_NOTIFY is not supported (it needs a listener)")
        raise SeccompError(f"invalid seccomp action {name!r}; use one of {', '.join(ACTIONS)}")
    if name == "SCMP_ACT_ERRNO":
        return seccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret)
    if name == "SCMP_ACT_TRACE":
        return seccomp.TRACE(errno.EPERM if errno_ret is None else errno_ret)
    return {"SCMP_ACT_KILL": seccomp.KILL_THREAD, "SCMP_ACT_KILL_THREAD": seccomp.KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": seccomp.KILL_PROCESS, "SCMP_ACT_TRAP": seccomp.TRAP,
            "SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_LOG": seccomp.LOG}[name]


def build(config: dict):
    """Return a pyseccomp filter for `config`; raise SeccompError for anything malformed."""
    import pyseccomp as seccomp

    if not isinstance(config, dict) or "defaultAction" not in config:
        raise SeccompError("invalid linux.seccomp: defaultAction is missing")
    default = _action(seccomp, config["defaultAction"], config.get("defaultErrnoRet"))
    scmp_filter = seccomp.SyscallFilter(default)
    # libseccomp sets no_new_privs when it loads a filter, unless this attribute is 0.
    # process.noNewPrivileges decides that instead.
    scmp_filter.set_attr(seccomp.Attr.CTL_NNP, 0)
    for name in config.get("architectures") or []:
        arch = getattr(seccomp.Arch, name.removeprefix("SCMP_ARCH_"), None)
        if arch is None:
            raise SeccompError(f"invalid seccomp architecture {name!r}")
        if not scmp_filter.exist_arch(arch):
            try:
                scmp_filter.add_arch(arch)
            except OSError as error:
                raise SeccompError(f"seccomp architecture {name} cannot be added: {error.strerror}") from None
    for flag in config.get("flags") or []:
        if flag not in FLAGS:
            raise SeccompError(f"invalid seccomp flag {flag!r}; use one of {', '.join(FLAGS)}")
        scmp_filter.set_attr(getattr(seccomp.Attr, FLAGS[flag]), 1)
    for rule in config.get("syscalls") or []:
        action = _action(seccomp, rule.get("action", ""), rule.get("errnoRet"))
        arguments = []
        for argument in rule.get("args") or []:
            operator = OPERATORS.get(argument.get("op"))
            if operator is None:
                raise SeccompError(f"invalid seccomp operator {argument.get('op')!r}")
            arguments.append(seccomp.Arg(int(argument["index"]), operator, int(argument.get("value", 0)),
                                         int(argument.get("valueTwo", 0))))
        for name in rule.get("names") or []:
            try:
                number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
            except OSError:
                continue
            if number < 0:
                continue  # unknown to this libseccomp
            if action == default:
                continue  # libseccomp rejects a rule that repeats the default action
            try:
                scmp_filter.add_rule(action, number, *arguments)
            except OSError as error:
                if error.errno == errno.EEXIST:
                    # NOTE: libseccomp refuses a rule that overlaps one already added for this syscall, and
                    # the earlier rule then decides those calls. That may be looser than the profile meant.
                    continue
                raise SeccompError(f"seccomp rule for {name} rejected: {error.strerror}") from None
    return scmp_filter


def load(scmp_filter) -> None:
    try:
        scmp_filter.load()
    except OSError as error:
        raise SeccompError(f"failed to load the seccomp filter: {error.strerror}") from None
