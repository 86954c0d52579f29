package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The devhost starts the handler as a child of this process and keeps its
// pid to itself; /proc tells us which child runs the handler binary, and
// VmHWM there is its peak resident set size. Writing "5" to clear_refs
// resets that peak (Linux 4.0+), which gives each phase its own peak.

// handlerPID finds the child of this process whose executable is exe; 0
// when there is none (not started yet, or restarting).
func handlerPID(exe string) int {
	want, err := filepath.EvalSymlinks(exe)
	if err != nil {
		want = exe
	}
	self := os.Getpid()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if parentPID(pid) != self {
			continue
		}
		if got, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe")); err == nil && got == want {
			return pid
		}
	}
	return 0
}

// parentPID reads the 4th field of /proc/<pid>/stat (after the command in
// parentheses, which may itself hold spaces).
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// peakRSSKiB is VmHWM of pid in KiB (0 if unreadable).
func peakRSSKiB(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeakRSS makes VmHWM start again from the current RSS. It reports
// whether that worked; when not, a phase's peak includes earlier phases.
func resetPeakRSS(pid int) bool {
	return pid > 0 && os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0) == nil
}
