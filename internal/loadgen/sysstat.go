package loadgen

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// SelfCPU returns the CPU time (user plus system) this process has used.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, 100 on every Linux this tool targets.
const clockTicks = 100

// ProcCPU returns the CPU time (user plus system) used by process pid,
// read from /proc/PID/stat, or -1 when unavailable.
func ProcCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the parenthesised command name: state is field 3,
	// utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(ut+st) * time.Second / clockTicks
}

// ProcRSS returns the resident set size in bytes of process pid from
// /proc/PID/status (VmRSS), or -1 when unavailable.
func ProcRSS(pid int) int64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) == 0 {
				return -1
			}
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// serverRSS returns the summed RSS of the server processes, -1 when
// unknown (any of them).
func (c *Config) serverRSS() int64 { return sumOverPIDs(c.ServerPID, c.ServerPIDs, ProcRSS) }

// serverCPU returns the summed CPU time of the server processes, -1
// when unknown (any of them).
func (c *Config) serverCPU() time.Duration {
	return sumOverPIDs(c.ServerPID, c.ServerPIDs, ProcCPU)
}

// sumOverPIDs sums read over pids (pid alone when pids is empty); -1 when
// any of them is unknown.
func sumOverPIDs[T ~int64](pid int, pids []int, read func(int) T) T {
	if len(pids) == 0 {
		return read(pid)
	}
	var sum T
	for _, p := range pids {
		v := read(p)
		if v < 0 {
			return -1
		}
		sum += v
	}
	return sum
}
