//go:build !unix

package azurite

import "os/exec"

func setProcAttr(*exec.Cmd) {}

func terminate(cmd *exec.Cmd) { cmd.Process.Kill() }
func kill(cmd *exec.Cmd)      { cmd.Process.Kill() }

// lockFile is a no-op where flock is unavailable; concurrent installs are then
// the caller's problem.
func lockFile(string) (func(), error) { return func() {}, nil }
