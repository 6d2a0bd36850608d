// Package shmvarprom exports the counters of shmvar variables to Prometheus:
// a Collector reads Var.Stats of each variable it was given when the
// registry is scraped. It lives in a module of its own, so that the shmvar
// package keeps its two dependencies (golang.org/x/sys, protobuf). The Java
// twin is a Micrometer MeterBinder.
//
//	c := shmvarprom.NewCollector()
//	c.Add("inventory", v) // v is a *shmvar.Var[T]
//	prometheus.MustRegister(c)
package shmvarprom

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

// Source is what a Collector reads: any *shmvar.Var[T].
type Source interface {
	Stats() shmvar.Stats
}

var (
	generationDesc = prometheus.NewDesc("shmvar_generation",
		"Values committed to the variable since its segment was created, by every process.", []string{"variable"}, nil)
	commitsDesc = prometheus.NewDesc("shmvar_commits_total",
		"Values this process committed to the variable.", []string{"variable"}, nil)
	contendedDesc = prometheus.NewDesc("shmvar_contended_acquisitions_total",
		"Acquisitions of the variable's lock that had to wait, by every process.", []string{"variable"}, nil)
	takeoversDesc = prometheus.NewDesc("shmvar_takeovers_total",
		"Acquisitions of the variable's lock taken over from a dead holder, by every process.", []string{"variable"}, nil)
	lockWaitDesc = prometheus.NewDesc("shmvar_lock_wait_seconds_total",
		"Time this process's updates of the variable waited for its lock.", []string{"variable"}, nil)
)

// Collector is a prometheus.Collector for one or more variables, each named
// by the value of its "variable" label. It is safe for concurrent use.
type Collector struct {
	mu   sync.Mutex
	vars map[string]Source
}

// NewCollector returns a Collector with no variables; Add gives it some.
func NewCollector() *Collector {
	return &Collector{vars: map[string]Source{}}
}

// Add exports v's counters under the label variable=name, in place of any
// variable added under that name before.
func (c *Collector) Add(name string, v Source) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.vars[name] = v
}

// Remove stops exporting the variable added under name. Remove a variable
// before closing it: a closed Var's segment counters read 0, which
// Prometheus would take for a counter reset.
func (c *Collector) Remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.vars, name)
}

// Describe sends the descriptors of the five metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{generationDesc, commitsDesc, contendedDesc, takeoversDesc, lockWaitDesc} {
		ch <- d
	}
}

// Collect reads each variable's Stats, which takes no lock, and sends its
// five metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	names := make([]string, 0, len(c.vars))
	for name := range c.vars {
		names = append(names, name)
	}
	sort.Strings(names)
	vars := make([]Source, len(names))
	for i, name := range names {
		vars[i] = c.vars[name]
	}
	c.mu.Unlock()
	for i, v := range vars {
		s, name := v.Stats(), names[i]
		ch <- prometheus.MustNewConstMetric(generationDesc, prometheus.GaugeValue, float64(s.Generation), name)
		ch <- prometheus.MustNewConstMetric(commitsDesc, prometheus.CounterValue, float64(s.Commits), name)
		ch <- prometheus.MustNewConstMetric(contendedDesc, prometheus.CounterValue, float64(s.ContendedAcquisitions), name)
		ch <- prometheus.MustNewConstMetric(takeoversDesc, prometheus.CounterValue, float64(s.Takeovers), name)
		ch <- prometheus.MustNewConstMetric(lockWaitDesc, prometheus.CounterValue, s.LockWait.Seconds(), name)
	}
}
