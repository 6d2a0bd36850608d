package shmvarprom_test

import (
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/metrics/shmvarprom"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
)

// create makes a Counter segment under a free test key (0x5b000000 and up)
// and removes it when the test ends.
func create(t *testing.T) *shmvar.Var[*examplespb.Counter] {
	t.Helper()
	for {
		key := uint32(0x5b000000 | rand.Int31n(0xffffff))
		v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Remove() })
		return v
	}
}

func incr(c *examplespb.Counter) (*examplespb.Counter, error) { c.Value++; return c, nil }

// TestCollectorExportsEachVariablesStats registers a Collector for two
// variables, one shared by two attachments, with a real registry, and
// compares the scrape with the Stats.
func TestCollectorExportsEachVariablesStats(t *testing.T) {
	orders, stock := create(t), create(t)
	other, err := shmvar.Open[*examplespb.Counter](orders.Key(), shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := 0; i < 3; i++ {
		if _, err := orders.Update(incr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Update(incr); err != nil {
		t.Fatal(err)
	}
	if err := stock.Set(&examplespb.Counter{Value: 5}); err != nil {
		t.Fatal(err)
	}

	c := shmvarprom.NewCollector()
	c.Add("orders", orders)
	c.Add("stock", stock)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP shmvar_commits_total Values this process committed to the variable.
# TYPE shmvar_commits_total counter
shmvar_commits_total{variable="orders"} 3
shmvar_commits_total{variable="stock"} 1
# HELP shmvar_contended_acquisitions_total Acquisitions of the variable's lock that had to wait, by every process.
# TYPE shmvar_contended_acquisitions_total counter
shmvar_contended_acquisitions_total{variable="orders"} 0
shmvar_contended_acquisitions_total{variable="stock"} 0
# HELP shmvar_generation Values committed to the variable since its segment was created, by every process.
# TYPE shmvar_generation gauge
shmvar_generation{variable="orders"} 4
shmvar_generation{variable="stock"} 1
# HELP shmvar_lock_wait_seconds_total Time this process's updates of the variable waited for its lock.
# TYPE shmvar_lock_wait_seconds_total counter
shmvar_lock_wait_seconds_total{variable="orders"} 0
shmvar_lock_wait_seconds_total{variable="stock"} 0
# HELP shmvar_takeovers_total Acquisitions of the variable's lock taken over from a dead holder, by every process.
# TYPE shmvar_takeovers_total counter
shmvar_takeovers_total{variable="orders"} 0
shmvar_takeovers_total{variable="stock"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	// A wait for the lock shows in the waiter's lock wait and in the
	// segment's contended count.
	held, done := make(chan struct{}), make(chan struct{})
	go other.Mutate(func(*examplespb.Counter) error { close(held); <-done; return errors.New("commit nothing") })
	<-held
	waited := make(chan error)
	go func() { _, err := orders.Update(incr); waited <- err }()
	time.Sleep(20 * time.Millisecond)
	close(done)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if got := value(t, reg, "shmvar_lock_wait_seconds_total", "orders"); got < 0.015 {
		t.Fatalf("shmvar_lock_wait_seconds_total{variable=orders} = %v, want about 0.02", got)
	}
	if got := value(t, reg, "shmvar_contended_acquisitions_total", "orders"); got != 1 {
		t.Fatalf("shmvar_contended_acquisitions_total{variable=orders} = %v, want 1", got)
	}

	c.Remove("stock")
	if n := testutil.CollectAndCount(c); n != 5 {
		t.Fatalf("after Remove, %d metrics; want the 5 of one variable", n)
	}
}

// value gathers reg and returns the value of name{variable=label}.
func value(t *testing.T, reg prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if f.GetName() == name && l.GetName() == "variable" && l.GetValue() == label {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{variable=%q}", name, label)
	return 0
}
