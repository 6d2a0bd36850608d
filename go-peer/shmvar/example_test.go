package shmvar_test

import (
	"fmt"
	"math/rand"
	"syscall"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// exampleKey is a key in 0x5d000000..0x5dffffff that no segment uses, so
// that the examples can run next to each other and to other programs.
func exampleKey() uint32 {
	for {
		key := uint32(0x5d000000 | rand.Intn(0x1000000))
		v, err := shmvar.OpenAny(key, shmvar.Options{ReadOnly: true, InitWait: time.Millisecond})
		if shmvar.Errno(err) == syscall.ENOENT {
			return key // no segment under it
		}
		if err == nil {
			v.Close()
		}
	}
}

// One process creates the variable; others open it by key and type.
func ExampleCreate() {
	key := exampleKey()
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Remove() // marks the segment for removal and detaches

	w, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()

	if err := v.Set(&examplespb.Counter{Value: 1, LastWriter: "creator"}); err != nil {
		fmt.Println(err)
		return
	}
	c, err := w.Get()
	fmt.Println(c.GetValue(), c.GetLastWriter(), w.Descriptor().GetMessageType(), err)
	// Output: 1 creator shmvar.examples.v1.Counter <nil>
}

// Every process calls OpenOrCreate: the first creates, the others open.
func ExampleOpenOrCreate() {
	key := exampleKey()
	v, created, err := shmvar.OpenOrCreate[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Remove()
	fmt.Println("first call created:", created)

	w, created, err := shmvar.OpenOrCreate[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	fmt.Println("second call created:", created)
	// Output:
	// first call created: true
	// second call created: false
}

// Update hands fn a copy of the current value, under the lock, and commits
// what fn returns.
func ExampleVar_Update() {
	v, err := shmvar.Create[*examplespb.Counter](exampleKey(), shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Remove()

	for i := 0; i < 3; i++ {
		if _, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
			c.Value += 10
			c.LastWriter = "example"
			return c, nil
		}); err != nil {
			fmt.Println(err)
			return
		}
	}
	c, _ := v.Get()
	g, _ := v.Generation()
	fmt.Println(c.GetValue(), c.GetLastWriter(), g)
	// Output: 30 example 3
}

// Mutate changes the Var's own message in place and allocates nothing; an
// error from fn commits nothing.
func ExampleVar_Mutate() {
	v, err := shmvar.Create[*examplespb.Counter](exampleKey(), shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Remove()

	inc := func(c *examplespb.Counter) error { c.Value++; return nil }
	for i := 0; i < 5; i++ {
		if err := v.Mutate(inc); err != nil {
			fmt.Println(err)
			return
		}
	}
	err = v.Mutate(func(c *examplespb.Counter) error {
		c.Value = -1
		return fmt.Errorf("changed my mind")
	})
	c, _ := v.Get()
	fmt.Println(c.GetValue(), err)
	// Output: 5 changed my mind
}

// AwaitChange blocks until another attachment (usually another process)
// commits.
func ExampleVar_AwaitChange() {
	key := exampleKey()
	v, err := shmvar.Create[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer v.Remove()
	writer, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer writer.Close()

	after, _ := v.Generation()
	go func() {
		time.Sleep(10 * time.Millisecond)
		writer.Set(&examplespb.Counter{Value: 42, LastWriter: "writer"})
	}()
	g, err := v.AwaitChange(after, 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, _ := v.Get()
	fmt.Println(g, c.GetValue(), c.GetLastWriter())
	// Output: 1 42 writer
}

// ParseKey reads keys as the commands' --key does; FormatKey prints them as
// ipcs does.
func ExampleParseKey() {
	for _, s := range []string{"0x5eed", "4294967295", "010"} {
		key, err := shmvar.ParseKey(s)
		if err != nil {
			fmt.Println("refused:", s)
			continue
		}
		fmt.Println(shmvar.FormatKey(key))
	}
	// Output:
	// 0x00005eed
	// 0xffffffff
	// refused: 010
}
