// Command etcd-bench measures what leaving the host costs: the shmvar
// variable kept in etcd, on a throwaway server (bin/etcd-dev) on this
// machine, so the figures are the protocol's and etcd's costs without a
// network. make bench runs it after the shared-memory figures.
//
//	etcd-bench [--root DIR] [--quick] [--json FILE]
//
// It prints one line per figure, in the layout of make bench's table:
// Go get (linearizable and serializable), Go update, a watcher's latency
// from commit to wake-up, and contended updates per second with Go and Java
// incrementing one counter at once (bin/go-peer and bin/java-peer --etcd).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	etcdvar "github.com/shmvar/shmvar/go-peer/etcd"
	"github.com/shmvar/shmvar/go-peer/examplespb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd-bench: "+err.Error())
		os.Exit(1)
	}
}

type figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Note  string  `json:"note,omitempty"`
}

func run() error {
	root := flag.String("root", ".", "repository root (bin/ and target/)")
	quick := flag.Bool("quick", false, "fewer samples")
	jsonOut := flag.String("json", "", "also write the figures to this file")
	flag.Parse()
	samples, contended := 2000, 2000
	if *quick {
		samples, contended = 300, 300
	}
	server := exec.Command(filepath.Join(*root, "bin/etcd-dev"))
	server.Stderr = os.Stderr
	stdin, err := server.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := server.StdoutPipe()
	if err != nil {
		return err
	}
	if err := server.Start(); err != nil {
		return fmt.Errorf("start bin/etcd-dev (make build): %v", err)
	}
	defer func() { stdin.Close(); server.Wait() }()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(40 * time.Second):
	}
	endpoint, ok := strings.CutPrefix(line, "READY ")
	if !ok {
		return fmt.Errorf("bin/etcd-dev did not print READY (printed %q)", line)
	}
	base := "etcd://" + endpoint + "/shmvar-bench/"
	ctx := context.Background()
	var figures []figure
	add := func(f figure) {
		figures = append(figures, f)
		fmt.Printf("%-40s %12s   %s\n", f.Name, format(f), f.Note)
	}

	v, err := etcdvar.Create[*examplespb.Counter](ctx, base+"latency", etcdvar.Options{})
	if err != nil {
		return err
	}
	defer etcdvar.Remove(ctx, base+"latency", etcdvar.Options{})
	defer v.Close()
	ser, err := etcdvar.Open[*examplespb.Counter](ctx, base+"latency", etcdvar.Options{Serializable: true})
	if err != nil {
		return err
	}
	defer ser.Close()
	incr := func(c *examplespb.Counter) error { c.Value++; return nil }
	for _, m := range []struct {
		name string
		op   func() error
		note string
	}{
		{"etcd: Go get, linearizable (p50)", func() error { _, err := v.Get(); return err }, "one round trip and a read index"},
		{"etcd: Go get, serializable (p50)", func() error { _, err := ser.Get(); return err }, "served by the member asked"},
		{"etcd: Go update, uncontended (p50)", func() error { return v.Mutate(incr) }, "one transaction: the cached revision is compared"},
	} {
		d, err := median(samples, m.op)
		if err != nil {
			return fmt.Errorf("%s: %v", m.name, err)
		}
		add(figure{Name: m.name, Value: float64(d.Nanoseconds()) / 1e3, Unit: "µs", Note: m.note})
	}

	// Watch: one Var commits, another wakes from AwaitChange.
	w, err := etcdvar.Open[*examplespb.Counter](ctx, base+"latency", etcdvar.Options{})
	if err != nil {
		return err
	}
	defer w.Close()
	var lat []time.Duration
	for i := 0; i < samples/4; i++ {
		g, err := w.Generation()
		if err != nil {
			return err
		}
		woke := make(chan time.Time, 1)
		errs := make(chan error, 1)
		go func() {
			if _, err := w.AwaitChange(g, 10*time.Second); err != nil {
				errs <- err
				return
			}
			woke <- time.Now()
		}()
		time.Sleep(2 * time.Millisecond) // let the watcher read and watch
		start := time.Now()
		if err := v.Mutate(incr); err != nil {
			return err
		}
		select {
		case t := <-woke:
			lat = append(lat, t.Sub(start))
		case err := <-errs:
			return err
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	add(figure{Name: "etcd: watch, commit to wake-up (p50)", Value: float64(lat[len(lat)/2].Nanoseconds()) / 1e3, Unit: "µs",
		Note: fmt.Sprintf("p99 %s; from the start of the commit", lat[len(lat)*99/100].Round(time.Microsecond))})

	// Contended: Go and Java increment one counter at once, each as a command.
	addr := base + "contended"
	if out, err := exec.Command(filepath.Join(*root, "bin/go-peer"), "create", "--etcd", addr).CombinedOutput(); err != nil {
		return fmt.Errorf("go-peer create: %v: %s", err, out)
	}
	defer etcdvar.Remove(ctx, addr, etcdvar.Options{})
	// Java starts first (a JVM takes a second); Go starts once Java's first
	// commit is seen, with half as many increments, and the rate is taken
	// while both run: from Go's start to the first exit.
	var wg sync.WaitGroup
	results := map[string]string{}
	var mu sync.Mutex
	var failed error
	firstDone := make(chan struct{})
	var once sync.Once
	incrBy := func(peer string, n int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command(filepath.Join(*root, "bin", peer), "incr", "--etcd", addr, "--count", strconv.Itoa(n), "--quiet").CombinedOutput()
			once.Do(func() { close(firstDone) })
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = fmt.Errorf("%s incr: %v: %s", peer, err, out)
			}
			results[peer] = string(out)
		}()
	}
	probe, err := etcdvar.Open[*examplespb.Counter](ctx, addr, etcdvar.Options{})
	if err != nil {
		return err
	}
	defer probe.Close()
	incrBy("java-peer", 2*contended)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if g, err := probe.Generation(); err == nil && g > 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("java-peer made no increment in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	g1, err := probe.Generation()
	if err != nil {
		return err
	}
	t1 := time.Now()
	incrBy("go-peer", contended)
	<-firstDone
	t2 := time.Now()
	g2, err := probe.Generation()
	if err != nil {
		return err
	}
	wg.Wait()
	if failed != nil {
		return failed
	}
	both := float64(g2-g1) / t2.Sub(t1).Seconds()
	final, err := etcdvar.Open[*examplespb.Counter](ctx, addr, etcdvar.Options{})
	if err != nil {
		return err
	}
	c, err := final.Get()
	final.Close()
	if err != nil {
		return err
	}
	if c.GetValue() != int64(3*contended) {
		return fmt.Errorf("contended: value %d, want %d", c.GetValue(), 3*contended)
	}
	rates := regexp.MustCompile(`rate=(\d+)/s .*conflicts=(\d+)`)
	note := ""
	for _, peer := range []string{"go-peer", "java-peer"} {
		if m := rates.FindStringSubmatch(results[peer]); m != nil {
			note += fmt.Sprintf("%s %s/s (%s conflicts); ", strings.TrimSuffix(peer, "-peer"), m[1], m[2])
		}
	}
	add(figure{Name: "etcd: contended updates/s (Java+Go)", Value: both, Unit: "/s",
		Note: fmt.Sprintf("while both ran (%s, Go from its start); each over its whole run: %s", t2.Sub(t1).Round(time.Millisecond), strings.TrimSuffix(note, "; "))})
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(figures, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// median runs op n times (after n/10 warm-up runs) and returns the median duration.
func median(n int, op func() error) (time.Duration, error) {
	for i := 0; i < n/10; i++ {
		if err := op(); err != nil {
			return 0, err
		}
	}
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		if err := op(); err != nil {
			return 0, err
		}
		d[i] = time.Since(start)
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[n/2], nil
}

func format(f figure) string {
	if f.Unit == "/s" {
		return fmt.Sprintf("%.0f", f.Value)
	}
	return fmt.Sprintf("%.1f %s", f.Value, f.Unit)
}
