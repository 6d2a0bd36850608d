// Command inventory is a consumer of shmvar with a message type of its own:
// it attaches to the inventory variable under --key, creating it if no
// process has yet, and adds --add units to stock[--item], --count times,
// each under the variable's lock. The Java twin (com.acme.inventory) shares
// the same variable.
//
//	inventory --key 0x5d1e0001 --item apples --add 3 [--count 1] [--by NAME]
//
// It prints one line: created=true|false item=NAME stock=N generation=G.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"example.com/acme/inventory/inventorypb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var key uint32
	fs.Func("key", "System V key of the variable", func(s string) (err error) {
		key, err = shmvar.ParseKey(s)
		return err
	})
	item := fs.String("item", "", "the item whose stock changes")
	add := fs.Int64("add", 1, "units to add (negative: remove)")
	count := fs.Int("count", 1, "how many times to add them")
	by := fs.String("by", "go:"+strconv.Itoa(os.Getpid()), "who commits, stored in updated_by")
	if err := fs.Parse(args); err != nil || key == 0 || *item == "" || *count < 0 || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: inventory --key K --item NAME [--add N] [--count C] [--by NAME]")
		return 2
	}
	created, inv, err := addStock(key, *item, *add, *count, *by)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "created=%t item=%s stock=%d generation=%d\n", created, *item, inv.stock, inv.generation)
	return 0
}

// result is what addStock leaves: the item's stock after its last commit.
type result struct {
	stock      int64
	generation uint64
}

// addStock opens the inventory under key, or creates it, and adds n units
// of item count times, each in its own locked update.
func addStock(key uint32, item string, n int64, count int, by string) (bool, result, error) {
	v, created, err := shmvar.OpenOrCreate[*inventorypb.Inventory](key, shmvar.Options{})
	if err != nil {
		return false, result{}, err
	}
	defer v.Close()
	var r result
	for i := 0; i < count; i++ {
		next, err := v.Update(func(inv *inventorypb.Inventory) (*inventorypb.Inventory, error) {
			if inv.Stock == nil {
				inv.Stock = map[string]int64{}
			}
			inv.Stock[item] += n
			inv.UpdatedBy = by
			inv.UpdatedAt = timestamppb.Now()
			return inv, nil
		})
		if err != nil {
			return created, r, err
		}
		r.stock = next.Stock[item]
	}
	if r.generation, err = v.Generation(); err != nil {
		return created, r, err
	}
	if count == 0 {
		cur, err := v.Get()
		if err != nil {
			return created, r, err
		}
		r.stock = cur.Stock[item]
	}
	return created, r, nil
}
