package azurite

// ProcessID exposes the server's pid to tests.
func ProcessID(i *Instance) int { return i.proc.Process.Pid }
