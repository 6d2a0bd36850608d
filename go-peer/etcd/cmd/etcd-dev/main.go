// Command etcd-dev runs a throwaway etcd server for tests, demos and
// benchmarks: one embedded member (go.etcd.io/etcd/server/v3/embed) on a
// port the OS chooses, or a cluster of three member processes, with a
// temporary data directory, small WAL segments, fast elections and quiet
// logs. It prints "READY host:port[,host:port...]" once clients can connect,
// and stops and removes its data when its standard input closes or on
// SIGTERM or SIGINT.
//
//	etcd-dev [--members 1|3] [--port N] [--data DIR] [--no-fsync]
//
// While it runs it reads commands on standard input, one a line:
//
//	stop [N]    stop member N (default 1) gracefully; prints "STOPPED N"
//	kill N      kill member N's process with SIGKILL (--members 3 only); prints "KILLED N"
//	start [N]   start member N again on the same data and port; prints "READY N host:port"
//
// Errors go to standard error as one line, with exit status 1 (2 for usage).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"
)

// startTimeout bounds how long a member may take to become ready.
const startTimeout = 20 * time.Second

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	signal.Ignore(syscall.SIGPIPE) // a reader of our stdout that went away must not kill us before cleanup
	err := run(os.Args[1:])
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "etcd-dev: "+err.Error())
		fmt.Fprintln(os.Stderr, "usage: etcd-dev [--members 1|3] [--port N] [--data DIR] [--no-fsync]")
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "etcd-dev: "+err.Error())
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("etcd-dev", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	members := fs.Int("members", 1, "")
	port := fs.Int("port", 0, "")
	data := fs.String("data", "", "")
	noFsync := fs.Bool("no-fsync", false, "")
	// A cluster's member processes: set by the parent, not by people.
	name := fs.String("member", "", "")
	peerPort := fs.Int("peer-port", 0, "")
	cluster := fs.String("initial-cluster", "", "")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return usageError{"unexpected argument " + strconv.Quote(fs.Arg(0))}
	case *members != 1 && *members != 3:
		return usageError{fmt.Sprintf("--members %d: give 1 or 3", *members)}
	case *port < 0 || *port > 65535:
		return usageError{fmt.Sprintf("--port %d outside 0..65535", *port)}
	}
	// The handler goes in before READY: a SIGTERM right after it still cleans up.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	dir, keep := *data, *data != ""
	if !keep {
		d, err := os.MkdirTemp("", "etcd-dev-")
		if err != nil {
			return err
		}
		dir = d
	}
	cleanup := func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}
	defer cleanup()
	if *members == 3 {
		return runCluster(dir, *noFsync, signals)
	}
	if *name == "" {
		*name = "default"
	}
	m := &member{name: *name, dir: dir, clientPort: *port, peerPort: *peerPort, cluster: *cluster, noFsync: *noFsync}
	if err := m.start(); err != nil {
		return err
	}
	fmt.Printf("READY %s\n", m.endpoint())
	defer m.stop()
	return serve(signals, func(cmd string, n int) (string, error) {
		switch cmd {
		case "stop":
			m.stop()
			return fmt.Sprintf("STOPPED %d", n), nil
		case "start":
			if err := m.start(); err != nil {
				return "", err
			}
			return fmt.Sprintf("READY %d %s", n, m.endpoint()), nil
		}
		return "", fmt.Errorf("%s: a single member cannot be killed; use stop", cmd)
	})
}

// serve reads commands from stdin until it closes or a signal comes; do
// answers each with the line to print.
func serve(signals <-chan os.Signal, do func(cmd string, n int) (string, error)) error {
	lines := make(chan string)
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-signals:
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			n := 1
			if len(fields) > 1 {
				v, err := strconv.Atoi(fields[1])
				if err != nil || v < 1 || v > 3 {
					fmt.Fprintf(os.Stderr, "etcd-dev: %q: member number 1..3 expected\n", line)
					continue
				}
				n = v
			}
			if fields[0] != "stop" && fields[0] != "start" && fields[0] != "kill" {
				fmt.Fprintf(os.Stderr, "etcd-dev: %q: commands are stop [N], kill N, start [N]\n", line)
				continue
			}
			out, err := do(fields[0], n)
			if err != nil {
				fmt.Fprintln(os.Stderr, "etcd-dev: "+err.Error())
				continue
			}
			fmt.Println(out)
		}
	}
}

// member is one embedded etcd server.
type member struct {
	name                 string
	dir                  string
	clientPort, peerPort int
	cluster              string
	noFsync              bool
	etcd                 *embed.Etcd
}

func (m *member) endpoint() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.clientPort)) }

func (m *member) start() error {
	// Small WAL segments: the default preallocates 64 MB per segment.
	wal.SegmentSizeBytes = 4 << 20
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.LogLevel = "fatal" // shutdown and version-monitor errors are noise here; failures to start are reported by us
	cfg.LogOutputs = []string{"stderr"}
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = m.noFsync
	cfg.SnapshotCount = 10000
	client := url.URL{Scheme: "http", Host: m.endpoint()}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	if m.peerPort == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		m.peerPort = p
	}
	peer := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(m.peerPort))}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = m.cluster
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.InitialClusterFromName(m.name)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start member %s: %v", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("member %s: %v", m.name, err)
	case <-time.After(startTimeout):
		e.Close()
		return fmt.Errorf("member %s not ready after %v", m.name, startTimeout)
	}
	m.etcd = e
	// With port 0 the OS chose: keep it, so that a restart listens there again.
	_, p, _ := net.SplitHostPort(e.Clients[0].Addr().String())
	m.clientPort, _ = strconv.Atoi(p)
	return nil
}

func (m *member) stop() {
	if m.etcd != nil {
		m.etcd.Close()
		m.etcd = nil
	}
}

// freePort asks the OS for a free port. Another process may take it before
// etcd binds it; etcd then fails to start, with a message that says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// child is one member process of a cluster.
type child struct {
	args  []string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

func (c *child) start() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, c.args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		ready <- strings.TrimSpace(line)
		io.Copy(io.Discard, r)
	}()
	select {
	case line := <-ready:
		if addr, ok := strings.CutPrefix(line, "READY "); ok {
			c.cmd, c.stdin, c.addr = cmd, stdin, addr
			return nil
		}
	case <-time.After(startTimeout + time.Second):
	}
	cmd.Process.Kill()
	cmd.Wait()
	return fmt.Errorf("member process %v did not become ready", c.args)
}

// stop ends the member: stdin closed is its signal to stop gracefully.
func (c *child) stop() {
	if c.cmd == nil {
		return
	}
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

func (c *child) kill() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
	c.stdin.Close()
	c.cmd = nil
}

// runCluster starts three member processes and prints their endpoints.
func runCluster(dir string, noFsync bool, signals <-chan os.Signal) error {
	var peers, clients [3]int
	var initial []string
	for i := range 3 {
		var err error
		if peers[i], err = freePort(); err != nil {
			return err
		}
		if clients[i], err = freePort(); err != nil {
			return err
		}
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i+1, peers[i]))
	}
	children := make([]*child, 3)
	defer func() {
		for _, c := range children {
			if c != nil {
				c.stop()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		args := []string{"--member", fmt.Sprintf("m%d", i+1), "--data", filepath.Join(dir, fmt.Sprintf("m%d", i+1)),
			"--port", strconv.Itoa(clients[i]), "--peer-port", strconv.Itoa(peers[i]), "--initial-cluster", strings.Join(initial, ",")}
		if noFsync {
			args = append(args, "--no-fsync")
		}
		children[i] = &child{args: args}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = children[i].start() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	addrs := []string{children[0].addr, children[1].addr, children[2].addr}
	fmt.Printf("READY %s\n", strings.Join(addrs, ","))
	return serve(signals, func(cmd string, n int) (string, error) {
		c := children[n-1]
		switch cmd {
		case "stop":
			c.stop()
			return fmt.Sprintf("STOPPED %d", n), nil
		case "kill":
			c.kill()
			return fmt.Sprintf("KILLED %d", n), nil
		}
		if c.cmd != nil {
			return "", fmt.Errorf("start %d: member %d is running", n, n)
		}
		if err := c.start(); err != nil {
			return "", err
		}
		return fmt.Sprintf("READY %d %s", n, c.addr), nil
	})
}
