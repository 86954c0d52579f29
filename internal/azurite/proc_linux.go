package azurite

import "syscall"

// setDeathSignal makes the kernel kill Azurite if the process that started it
// dies without calling Close (a test binary killed by its timeout), so no
// orphan server outlives a test run.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
