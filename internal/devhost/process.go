package devhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// handlerProc runs the custom handler and keeps it running: it starts the
// executable with FUNCTIONS_CUSTOMHANDLER_PORT set to a free port, waits
// until it answers HTTP, and restarts it when it dies, like the host does.
type handlerProc struct {
	exe          string
	args         []string
	dir          string
	env          []string
	out          io.Writer
	log          *slog.Logger
	startTimeout time.Duration
	restartDelay time.Duration
	probe        *http.Client

	mu       sync.Mutex
	base     string        // the running handler's URL, "" while (re)starting
	ready    chan struct{} // closed once base is set
	cmd      *exec.Cmd
	stopping bool
	stop     chan struct{} // closed by shutdown
	done     chan struct{} // closed when the supervisor has exited
	starts   int
}

func newHandlerProc(exe string, args []string, dir string, env []string, out io.Writer, log *slog.Logger, startTimeout, restartDelay time.Duration) *handlerProc {
	return &handlerProc{
		exe: exe, args: args, dir: dir, env: env, out: out, log: log,
		startTimeout: startTimeout, restartDelay: restartDelay,
		probe: &http.Client{
			Timeout:   time.Second,
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		},
		ready: make(chan struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// start launches the handler and returns once it listens, or with the reason
// it did not.
func (p *handlerProc) start(ctx context.Context) error {
	cmd, base, exited, err := p.launch(ctx)
	if err != nil {
		close(p.done)
		return err
	}
	p.setReady(cmd, base)
	go p.supervise(cmd, exited)
	return nil
}

func (p *handlerProc) setReady(cmd *exec.Cmd, base string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmd, p.base = cmd, base
	close(p.ready)
	if p.stopping {
		// shutdown began while this process was starting and did not see it.
		cmd.Process.Signal(syscall.SIGTERM)
	}
}

// endpoint returns the running handler's base URL, waiting while it
// (re)starts.
func (p *handlerProc) endpoint(ctx context.Context) (string, error) {
	for {
		p.mu.Lock()
		base, ready, stopping := p.base, p.ready, p.stopping
		p.mu.Unlock()
		if stopping {
			return "", errors.New("the devhost is stopping")
		}
		if base != "" {
			return base, nil
		}
		select {
		case <-ready:
		case <-p.stop:
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the handler to (re)start: %w", ctx.Err())
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for the handler: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts one handler process and waits until it answers on its port.
func (p *handlerProc) launch(ctx context.Context) (*exec.Cmd, string, <-chan error, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", nil, err
	}
	cmd := exec.Command(p.exe, p.args...)
	cmd.Dir = p.dir
	cmd.Env = append(append([]string{}, p.env...), "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// A grandchild holding the output pipe must not block Wait forever.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		hint := ""
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOENT) {
			hint = ": build the handler first (e.g. go build -o bin/handler ./handler) and pass its path with -handler (Options.Executable), or put it where host.json's defaultExecutablePath says"
		}
		return nil, "", nil, fmt.Errorf("starting the handler %s: %v%s", p.exe, err, hint)
	}
	p.mu.Lock()
	p.starts++
	p.mu.Unlock()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.NewTimer(p.startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		// Like the host: any HTTP answer on / means the handler is up.
		if resp, err := p.probe.Get(base + "/"); err == nil {
			resp.Body.Close()
			return cmd, base, exited, nil
		}
		select {
		case err := <-exited:
			return nil, "", nil, fmt.Errorf("the handler %s exited (%s) before it listened on FUNCTIONS_CUSTOMHANDLER_PORT=%d; its output above says why", p.exe, exitStatus(err), port)
		case <-deadline.C:
			cmd.Process.Kill()
			<-exited
			return nil, "", nil, fmt.Errorf("the handler %s did not answer on 127.0.0.1:%d within %s: it must listen on the port in FUNCTIONS_CUSTOMHANDLER_PORT", p.exe, port, p.startTimeout)
		case <-ctx.Done():
			cmd.Process.Kill()
			<-exited
			return nil, "", nil, ctx.Err()
		case <-p.stop:
			cmd.Process.Kill()
			<-exited
			return nil, "", nil, errors.New("the devhost is stopping")
		case <-tick.C:
		}
	}
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// supervise waits for the handler to exit and restarts it until shutdown.
func (p *handlerProc) supervise(cmd *exec.Cmd, exited <-chan error) {
	defer close(p.done)
	for {
		started := time.Now()
		err := <-exited
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		p.base, p.cmd, p.ready = "", nil, make(chan struct{})
		p.mu.Unlock()
		p.log.Error("devhost: the handler exited; restarting it", "status", exitStatus(err), "ran", time.Since(started).Round(time.Millisecond))

		delay := p.restartDelay
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(delay):
			}
			var base string
			cmd, base, exited, err = p.launch(context.Background())
			if err == nil {
				p.setReady(cmd, base)
				p.log.Info("devhost: the handler is running again", "url", base)
				break
			}
			p.log.Error("devhost: restarting the handler failed", "err", err)
			delay = min(2*delay+100*time.Millisecond, 30*time.Second)
		}
	}
}

// shutdown stops the handler: SIGTERM, then SIGKILL after grace.
func (p *handlerProc) shutdown(grace time.Duration) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		<-p.done
		return
	}
	p.stopping = true
	cmd := p.cmd
	close(p.stop)
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.mu.Lock()
	cmd = p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Kill()
	}
	<-p.done
}
