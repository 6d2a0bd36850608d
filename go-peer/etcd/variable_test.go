package etcdvar_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	etcdvar "github.com/shmvar/shmvar/go-peer/etcd"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

var bg = context.Background()

func counter(n int64) *examplespb.Counter { return &examplespb.Counter{Value: n} }

func incr(c *examplespb.Counter) (*examplespb.Counter, error) {
	c.Value++
	return c, nil
}

func mustCreate(t *testing.T, address string, opts etcdvar.Options) *etcdvar.Var[*examplespb.Counter] {
	t.Helper()
	v, err := etcdvar.Create[*examplespb.Counter](bg, address, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func mustOpen(t *testing.T, address string, opts etcdvar.Options) *etcdvar.Var[*examplespb.Counter] {
	t.Helper()
	v, err := etcdvar.Open[*examplespb.Counter](bg, address, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func TestShouldCreateOnceOpenWithTheTypeAndRefuseAnother(t *testing.T) {
	addr := shared(t).address(t)
	v := mustCreate(t, addr, etcdvar.Options{})
	if g, err := v.Generation(); err != nil || g != 0 {
		t.Fatalf("new variable: generation %d, %v; want 0", g, err)
	}
	if got, err := v.Get(); err != nil || got.GetValue() != 0 {
		t.Fatalf("new variable holds %v, %v; want the empty Counter", got, err)
	}
	_, err := etcdvar.Create[*examplespb.Counter](bg, addr, etcdvar.Options{})
	if !errors.Is(err, syscall.EEXIST) || !strings.Contains(err.Error(), "variable exists") {
		t.Fatalf("second create: %v; want EEXIST", err)
	}
	_, err = etcdvar.Create[*examplespb.Point](bg, addr, etcdvar.Options{})
	if !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("second create of another type: %v; want EEXIST", err)
	}
	_, err = etcdvar.Open[*examplespb.Point](bg, addr, etcdvar.Options{})
	var se *shmvar.Error
	if !errors.Is(err, shmvar.ErrTypeMismatch) || !errors.As(err, &se) || se.Kind() != shmvarpb.ErrorKind_TYPE_MISMATCH ||
		!strings.Contains(err.Error(), "variable holds shmvar.examples.v1.Counter, asked for shmvar.examples.v1.Point") {
		t.Fatalf("open as Point: %v; want a TYPE_MISMATCH naming both types", err)
	}
	if err := v.Set(counter(41)); err != nil {
		t.Fatal(err)
	}
	w := mustOpen(t, addr, etcdvar.Options{})
	if got, err := w.Update(incr); err != nil || got.GetValue() != 42 {
		t.Fatalf("update through a second Var: %v, %v; want 42", got, err)
	}
	any, err := etcdvar.OpenAny(bg, addr, etcdvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	m, err := any.Get()
	if err != nil {
		t.Fatal(err)
	}
	if s := prototext.Format(m); !strings.Contains(s, "value:") || !strings.Contains(s, "42") {
		t.Fatalf("OpenAny decodes %q; want value: 42", s)
	}
	if any.Descriptor().GetMessageType() != "shmvar.examples.v1.Counter" || any.Descriptor().GetCreator() != "go" {
		t.Fatalf("schema record: %v", any.Descriptor())
	}
	if g, _ := w.Generation(); g != 2 {
		t.Fatalf("generation %d after two commits; want 2", g)
	}
	_, err = etcdvar.Open[*examplespb.Counter](bg, shared(t).address(t), etcdvar.Options{})
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "create it with 'create --etcd") {
		t.Fatalf("open of nothing: %v; want ENOENT with advice", err)
	}
}

func TestShouldRefuseBadAddressesInOneLine(t *testing.T) {
	for _, addr := range []string{"etcd://", "etcd://127.0.0.1:2379", "etcd://127.0.0.1:2379/", "etcd://127.0.0.1/x",
		"etcd://127.0.0.1:2379/a//b", "etcd://127.0.0.1:2379/a/.value", "http://127.0.0.1:2379/x", "etcd://127.0.0.1:2379/a b"} {
		_, err := etcdvar.Open[*examplespb.Counter](bg, addr, etcdvar.Options{})
		if !errors.Is(err, shmvar.ErrInvalidArgument) || strings.Contains(err.Error(), "\n") {
			t.Errorf("open %q: %v; want one line of invalid argument", addr, err)
		}
	}
	_, err := etcdvar.Create[*examplespb.Counter](bg, "etcd://127.0.0.1:2379/x", etcdvar.Options{Capacity: etcdvar.MaxCapacity + 1})
	if !errors.Is(err, shmvar.ErrInvalidArgument) || !strings.Contains(err.Error(), "1.5 MiB") {
		t.Errorf("capacity beyond the request limit: %v", err)
	}
}

func TestShouldCountEveryIncrementOfConcurrentWriters(t *testing.T) {
	addr := shared(t).address(t)
	mustCreate(t, addr, etcdvar.Options{})
	const writers, each = 4, 100
	vars := make([]*etcdvar.Var[*examplespb.Counter], writers)
	for i := range vars {
		vars[i] = mustOpen(t, addr, etcdvar.Options{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for _, v := range vars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := v.Update(incr); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var conflicts uint64
	for _, v := range vars {
		conflicts += v.Conflicts()
	}
	got, err := vars[0].Get()
	if err != nil || got.GetValue() != writers*each {
		t.Fatalf("value %v, %v; want %d", got, err, writers*each)
	}
	if g, _ := vars[0].Generation(); g != writers*each+0 {
		t.Fatalf("generation %d; want %d", g, writers*each)
	}
	t.Logf("%d updates from %d writers, %d CAS conflicts retried", writers*each, writers, conflicts)
	if conflicts == 0 {
		t.Errorf("four writers at once never conflicted: is the compare-and-swap exercised?")
	}
}

func TestShouldRoundTripEveryFieldType(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "proto", "testdata", "alltypes.txtpb"))
	if err != nil {
		t.Fatal(err)
	}
	want := &examplespb.AllTypes{}
	if err := prototext.Unmarshal(text, want); err != nil {
		t.Fatal(err)
	}
	addr := shared(t).address(t)
	v, err := etcdvar.Create[*examplespb.AllTypes](bg, addr, etcdvar.Options{Capacity: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Set(want); err != nil {
		t.Fatal(err)
	}
	w, err := etcdvar.Open[*examplespb.AllTypes](bg, addr, etcdvar.Options{Serializable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := w.Get(); err != nil || !proto.Equal(got, want) {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	raw, err := w.GetEncoded()
	encoded, _ := proto.Marshal(want)
	if err != nil || len(raw) != len(encoded) {
		t.Fatalf("GetEncoded: %d bytes, %v; want %d", len(raw), err, len(encoded))
	}
	big := proto.Clone(want).(*examplespb.AllTypes)
	big.FBytes = make([]byte, 70<<10)
	if err := v.Set(big); !errors.Is(err, shmvar.ErrTooLarge) {
		t.Fatalf("value beyond capacity: %v; want ErrTooLarge", err)
	}
}

func TestShouldSeeEveryChangeInAHandOff(t *testing.T) {
	addr := shared(t).address(t)
	ping := mustCreate(t, addr, etcdvar.Options{})
	pong := mustOpen(t, addr, etcdvar.Options{})
	const rounds = 100
	done := make(chan error, 1)
	go func() { // pong answers each odd value with the next even one
		g := uint64(0)
		for i := 0; i < rounds; i++ {
			var err error
			if g, err = pong.AwaitChange(g, 10*time.Second); err != nil {
				done <- err
				return
			}
			c, err := pong.Update(incr)
			if err != nil {
				done <- err
				return
			}
			if c.GetValue()%2 != 0 {
				done <- errors.New("pong saw an even value: a change was lost")
				return
			}
			g++
		}
		done <- nil
	}()
	g := uint64(0)
	for i := 0; i < rounds; i++ {
		c, err := ping.Update(incr)
		if err != nil {
			t.Fatal(err)
		}
		if c.GetValue() != int64(2*i+1) {
			t.Fatalf("round %d: ping committed %d; want %d", i, c.GetValue(), 2*i+1)
		}
		if g, err = ping.AwaitChange(g+1, 10*time.Second); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, _ := ping.Get(); got.GetValue() != 2*rounds {
		t.Fatalf("value %d; want %d", got.GetValue(), 2*rounds)
	}
}

func TestShouldTimeOutCloseWaitersAndReportRemoval(t *testing.T) {
	addr := shared(t).address(t)
	v := mustCreate(t, addr, etcdvar.Options{})
	start := time.Now()
	_, err := v.AwaitChange(0, 200*time.Millisecond)
	if !errors.Is(err, shmvar.ErrTimeout) || time.Since(start) > 2*time.Second {
		t.Fatalf("AwaitChange with nothing committed: %v after %v; want ErrTimeout after 200ms", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(bg, 100*time.Millisecond)
	defer cancel()
	if _, err := v.AwaitChangeContext(ctx, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitChangeContext: %v; want the context's error", err)
	}
	w := mustOpen(t, addr, etcdvar.Options{})
	waiting := make(chan error, 1)
	go func() { _, err := w.AwaitChangeContext(bg, 0); waiting <- err }()
	time.Sleep(100 * time.Millisecond)
	w.Close()
	select {
	case err := <-waiting:
		if !errors.Is(err, shmvar.ErrClosed) {
			t.Fatalf("waiter of a closed Var: %v; want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the waiter")
	}
	x := mustOpen(t, addr, etcdvar.Options{})
	go func() { _, err := x.AwaitChangeContext(bg, 0); waiting <- err }()
	time.Sleep(100 * time.Millisecond)
	if err := v.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("waiter of a removed variable: %v; want ENOENT", err)
	}
	if _, err := x.Update(incr); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("update of a removed variable: %v; want ENOENT", err)
	}
	if _, err := x.Get(); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("get of a removed variable: %v; want ENOENT", err)
	}
	if err := etcdvar.Remove(bg, addr, etcdvar.Options{}); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("second remove: %v; want ENOENT", err)
	}
	// Created again, even with another type, the old Var does not write it.
	y, err := etcdvar.Create[*examplespb.Point](bg, addr, etcdvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if _, err := x.Update(incr); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("update of a variable created again: %v; want ENOENT", err)
	}
}

func TestShouldReportUnavailableThenCarryOnAfterARestart(t *testing.T) {
	s := startServer(t)
	addr := s.address(t)
	reported := make(chan error, 100)
	opts := etcdvar.Options{RequestTimeout: 500 * time.Millisecond, OnUnavailable: func(err error) {
		select {
		case reported <- err:
		default:
		}
	}}
	v := mustCreate(t, addr, opts)
	for range 10 {
		if _, err := v.Update(incr); err != nil {
			t.Fatal(err)
		}
	}
	s.do("stop", "STOPPED")
	var se interface{ Kind() shmvarpb.ErrorKind }
	if _, err := v.Get(); !errors.Is(err, etcdvar.ErrUnavailable) || !errors.Is(err, shmvar.ErrUnavailable) ||
		!errors.As(err, &se) || se.Kind() != shmvarpb.ErrorKind_UNAVAILABLE || strings.Contains(err.Error(), "\n") {
		t.Fatalf("get with the server stopped: %v; want one line of ErrUnavailable, kind UNAVAILABLE", err)
	}
	if _, err := v.TryUpdate(300*time.Millisecond, incr); !errors.Is(err, shmvar.ErrTimeout) {
		t.Fatalf("TryUpdate with the server stopped: %v; want ErrTimeout", err)
	}
	updated := make(chan error, 1)
	go func() {
		for range 10 {
			if _, err := v.Update(incr); err != nil {
				updated <- err
				return
			}
		}
		updated <- nil
	}()
	select {
	case err := <-reported:
		if !errors.Is(err, etcdvar.ErrUnavailable) {
			t.Fatalf("reported %v; want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an update with the server stopped reported nothing within 10s")
	}
	s.do("start", "READY")
	select {
	case err := <-updated:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("updates did not carry on within 30s of the restart")
	}
	got, err := v.Get()
	// The TryUpdate that timed out may have landed or not: 20 or 21.
	if err != nil || got.GetValue() < 20 || got.GetValue() > 21 {
		t.Fatalf("after the restart: %v, %v; want 20 committed updates (21 if the timed-out one landed)", got, err)
	}
}

// TestShouldKeepTheSumWhileAMemberIsKilled kills one member of three, the
// leader or not, while two writers update, then starts it again.
func TestShouldKeepTheSumWhileAMemberIsKilled(t *testing.T) {
	s := startServer(t, "--members", "3")
	addr := s.address(t)
	mustCreate(t, addr, etcdvar.Options{})
	const writers, each = 2, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	progress := make(chan struct{}, writers*each)
	for i := range writers {
		// Each writer knows all three endpoints, starting from a different one.
		eps := strings.Split(s.endpoints, ",")
		eps = append(eps[i+1:], eps[:i+1]...)
		waddr := "etcd://" + strings.Join(eps, ",") + "/" + strings.SplitN(strings.TrimPrefix(addr, "etcd://"), "/", 2)[1]
		v := mustOpen(t, waddr, etcdvar.Options{RequestTimeout: time.Second})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := v.Update(incr); err != nil {
					errs <- err
					return
				}
				progress <- struct{}{}
			}
		}()
	}
	for range each / 2 {
		<-progress
	}
	s.do("kill 1", "KILLED 1")
	for range each / 2 {
		<-progress
	}
	s.do("start 1", "READY 1")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v := mustOpen(t, addr, etcdvar.Options{})
	if got, err := v.Get(); err != nil || got.GetValue() != writers*each {
		t.Fatalf("after a member was killed: %v, %v; want exactly %d", got, err, writers*each)
	}
}
