//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
)

// errInterrupted ends a command stopped by Ctrl-C or SIGTERM: exit 130, no message.
// errInterrupted and errTerminated end a command stopped by SIGINT or
// SIGTERM: exit status 130 and 143, as a JVM's.
var (
	errInterrupted = errors.New("interrupted")
	errTerminated  = errors.New("terminated")
	errAbandoned   = errors.New("abandoned") // an increment stopped by a signal
)

// notifySignals relays SIGINT, unless it is ignored (a background job of a
// shell without job control, which a JVM keeps ignoring too), and SIGTERM.
func notifySignals() chan os.Signal {
	signals := make(chan os.Signal, 1)
	if signal.Ignored(os.Interrupt) {
		signal.Notify(signals, syscall.SIGTERM)
	} else {
		signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	}
	return signals
}

// stoppedBy is the error that ends a command stopped by signal s.
func stoppedBy(s os.Signal) error {
	if s == syscall.SIGTERM {
		return errTerminated
	}
	return errInterrupted
}

// cmdDemo creates a Counter, increments it from this process and from a Java
// process at the same time with a live progress line, checks the final value
// is exactly the sum, and removes the segment, also when interrupted.
func cmdDemo(args []string, stdout io.Writer) error {
	fs := newFlags("demo")
	var key keyFlag
	fs.Var(&key, "key", "")
	count := fs.Int64("count", 1000000, "")
	javaPeer := fs.String("java", "bin/java-peer", "")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *count < 1 {
		return usageError{"--count must be at least 1"}
	}
	if !key.set {
		key.key = int32(0x5e000000 | rand.Int31n(0xffffff))
	}
	v, err := shmvar.Create[*examplespb.Counter](key.key, shmvar.Options{})
	if err != nil {
		return err
	}
	defer v.Remove()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	k := shmvar.FormatKey(key.key)
	fmt.Fprintf(stdout, "demo: key=%s, Go and Java each add %d to one shmvar.examples.v1.Counter\n", k, *count)
	var javaOut bytes.Buffer
	java := exec.Command(*javaPeer, "incr", "--key", k, "--count", strconv.FormatInt(*count, 10), "--quiet")
	java.Stdout = &javaOut
	java.Stderr = &javaOut
	java.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C is ours to forward
	if err := java.Start(); err != nil {
		return fmt.Errorf("starting %s: %w (run make build first)", *javaPeer, err)
	}
	javaDone := make(chan error, 1)
	go func() { javaDone <- java.Wait() }()

	// Start counting once Java's first increment lands, so both really run at once.
	for g, _ := v.Generation(); g == 0; g, _ = v.Generation() {
		select {
		case err := <-javaDone:
			return fmt.Errorf("java peer exited before its first increment: %v: %s", err, bytes.TrimSpace(javaOut.Bytes()))
		case <-signals:
			unix.Kill(-java.Process.Pid, unix.SIGTERM)
			<-javaDone
			return errInterrupted
		case <-time.After(time.Millisecond):
		}
	}

	var goResult string
	var goErr error
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		me := fmt.Sprintf("go:%d", os.Getpid())
		start := time.Now()
		for i := int64(0); i < *count; i++ {
			select {
			case <-stop:
				goErr = errInterrupted
				return
			default:
			}
			if _, err := v.TryUpdate(10*time.Second, func(c *examplespb.Counter) (*examplespb.Counter, error) {
				c.Value++
				c.LastWriter = me
				return c, nil
			}); err != nil {
				goErr = err
				return
			}
		}
		elapsed := time.Since(start)
		goResult = fmt.Sprintf("incr: count=%d elapsed=%s rate=%.0f/s", *count, elapsed.Round(time.Millisecond), float64(*count)/elapsed.Seconds())
	}()

	tty := isTerminal(os.Stdout)
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	var javaErr error
	javaRunning := true
	for javaRunning {
		select {
		case <-signals:
			close(stop)
			unix.Kill(-java.Process.Pid, unix.SIGTERM)
			<-javaDone
			wg.Wait()
			fmt.Fprintln(stdout, "\ndemo: interrupted; segment removed")
			return errInterrupted
		case javaErr = <-javaDone:
			javaRunning = false
		case <-ticker.C:
			if tty {
				if c, err := v.Get(); err == nil {
					fmt.Fprintf(stdout, "\r  value=%-10d %5.1f%%  last writer %-12s", c.GetValue(), 100*float64(c.GetValue())/float64(2**count), c.GetLastWriter())
				}
			}
		}
	}
	if javaErr != nil {
		close(stop)
		wg.Wait()
		return fmt.Errorf("java peer failed: %v: %s", javaErr, bytes.TrimSpace(javaOut.Bytes()))
	}
	wg.Wait()
	if goErr != nil {
		return goErr
	}
	if tty {
		fmt.Fprint(stdout, "\r\033[K")
	}
	final, err := v.Get()
	if err != nil {
		return err
	}
	gen, _ := v.Generation()
	lock, _ := v.Lock()
	javaLine := ""
	sc := bufio.NewScanner(&javaOut)
	for sc.Scan() {
		javaLine = sc.Text()
	}
	fmt.Fprintf(stdout, "  go:   %s\n  java: %s\n", goResult, javaLine)
	fmt.Fprintf(stdout, "final value=%d (expected %d), generation=%d, contended acquisitions=%d\n", final.GetValue(), 2**count, gen, lock.Contended)
	if final.GetValue() != 2**count {
		return fmt.Errorf("final value %d != %d: increments were lost", final.GetValue(), 2**count)
	}
	fmt.Fprintf(stdout, "demo: OK, segment %s removed\n", k)
	return nil
}
