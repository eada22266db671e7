package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
)

// The app's footprint as a process of its own: how long the binary takes
// from exec to its first ready answer, and its peak resident memory under
// 64 concurrent requests, next to the floor of its stack without it.
// Benchmarks, not tests: their figures go to docs/performance.md (issue 11).
//
//	go test -run '^$' -bench ColdStart -benchtime 20x .
//	go test -run '^$' -bench 'PeakRSS|FloorRSS' -benchtime 10x .
//
// (the portals' Enterprise budget, 250 and 5/s, holds ten rounds).

// buildApp builds the app's binary once per benchmark run, as the release
// image does (.ci/image): static, stripped.
var buildApp = sync.OnceValues(func() (string, error) { return build(".", "leadcontacts") })

// build builds the command in pkg, as name, as the release image builds
// the app.
func build(pkg, name string) (string, error) {
	dir, err := os.MkdirTemp("", "leadcontacts-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-tags=nomsgpack", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg) // #nosec G204 -- fixed arguments
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// startBinary runs the app's binary with a's environment and returns when
// /readyz first answers 200, with the time that took since exec.
func (a *appProc) startBinary(b *testing.B) (*exec.Cmd, time.Duration) {
	b.Helper()
	bin, err := buildApp()
	require.NoError(b, err)
	cmd := exec.Command(bin) // #nosec G204 -- the binary just built
	for k, v := range a.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = &a.out, &a.out
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	start := time.Now()
	require.NoError(b, cmd.Start())
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := start.Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Microsecond) {
		resp, err := c.Get(a.base + readyzPath)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return cmd, time.Since(start)
		}
	}
	b.Fatalf("the app did not become ready:\n%s", a.output())
	return nil, 0
}

const readyzPath = "/readyz"

// stopBinary ends the process as the platform does (SIGTERM) and waits.
func stopBinary(b *testing.B, cmd *exec.Cmd) {
	b.Helper()
	require.NoError(b, cmd.Process.Signal(os.Interrupt))
	_ = cmd.Wait()
}

// BenchmarkColdStart execs the binary on an existing SQLite file (the
// first start, which creates it, is not timed) and reports the median.
func BenchmarkColdStart(b *testing.B) {
	a := newAppProc(b)
	a.env["SHUTDOWN_DRAIN_SECONDS"] = "0"
	cmd, first := a.startBinary(b)
	stopBinary(b, cmd)
	b.Logf("first start (creates the database): %v", first)
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		cmd, d := a.startBinary(b)
		b.StopTimer()
		took = append(took, d)
		stopBinary(b, cmd)
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(took[0].Microseconds())/1000, "best-ms")
}

// worker is one user of BenchmarkPeakRSS64, at an address of its own as in
// an office of many: the inbound budgets per address stay the production
// ones.
type worker struct {
	p      *simulator.Portal
	lead   int
	client *http.Client
}

// BenchmarkPeakRSS64 keeps 64 requests in flight at the app, a tab view
// and a click in turn per worker, on eight portals 50 ms away, and
// reports the process's peak resident set (VmHWM) after b.N rounds.
func BenchmarkPeakRSS64(b *testing.B) {
	const portals, perPortal = 8, 8
	a := newAppProc(b)
	a.env["SHUTDOWN_DRAIN_SECONDS"] = "0"
	// The portals are on Bitrix24's Enterprise plan, and so is the app's
	// limiter: it is not what this measures.
	a.env["B24_PORTAL_RATE"], a.env["B24_PORTAL_BURST"] = "5", "250"
	for _, k := range []string{"GODEBUG", "GOGC", "GOMEMLIMIT"} {
		a.env[k] = os.Getenv(k)
	}
	cmd, _ := a.startBinary(b)
	idle, idleFile := procMemory(b, cmd.Process.Pid)
	var workers []worker
	for range portals {
		p, err := a.sim.AddPortal(simulator.PortalOptions{Seed: true, Enterprise: true})
		require.NoError(b, err)
		a.installOn(p)
		leads := addLeads(b, p, 1000, perPortal, 3)
		p.InjectFault(simulator.Fault{Delay: 50 * time.Millisecond, Times: 1 << 30})
		for _, l := range leads {
			workers = append(workers, worker{p, l, fromAddr(fmt.Sprintf("127.0.1.%d", len(workers)+1), nil)})
		}
	}
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		errs := make(chan error, len(workers))
		for _, w := range workers {
			wg.Go(func() {
				tab, err := w.open(a)
				if err == nil && tab.status == http.StatusOK {
					var res appPage
					res, err = w.click(a, tab)
					if err == nil && res.status != http.StatusOK {
						err = fmt.Errorf("click: status %d", res.status)
					}
				} else if err == nil {
					err = fmt.Errorf("tab: status %d", tab.status)
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(b, err)
		}
		b.StopTimer()
		for _, w := range workers {
			require.NoError(b, w.p.LinkContact(w.lead, 1, 10, true))
		}
		b.StartTimer()
	}
	b.StopTimer()
	peak, _ := procMemory(b, cmd.Process.Pid)
	stopBinary(b, cmd)
	b.ReportMetric(float64(idle)/(1<<20), "idle-MiB")
	b.ReportMetric(float64(idleFile)/(1<<20), "idle-file-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}

// BenchmarkFloorRSS is the stack's share of BenchmarkPeakRSS64: the
// libraries the app must use, initialised and serving a templated page,
// without the app (testdata/floor). It reports the resident set idle and
// after b.N rounds of 64 concurrent requests, and how much of it is the
// binary's file-backed pages.
func BenchmarkFloorRSS(b *testing.B) {
	bin, err := build("./testdata/floor", "floor")
	require.NoError(b, err)
	addr := freeAddr(b)
	cmd := exec.Command(bin, addr, filepath.Join(b.TempDir(), "floor.db")) // #nosec G204 -- the binary just built
	require.NoError(b, cmd.Start())
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(path string) error {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", path, resp.StatusCode)
		}
		return nil
	}
	for deadline := time.Now().Add(20 * time.Second); get("/") != nil; time.Sleep(time.Millisecond) {
		require.True(b, time.Now().Before(deadline), "the floor program did not start")
	}
	require.NoError(b, get("/metrics"))
	idle, idleFile := procMemory(b, cmd.Process.Pid)
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 64 {
			wg.Go(func() { errs <- get("/") })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(b, err)
		}
	}
	b.StopTimer()
	peak, _ := procMemory(b, cmd.Process.Pid)
	b.ReportMetric(float64(idle)/(1<<20), "idle-MiB")
	b.ReportMetric(float64(idleFile)/(1<<20), "idle-file-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}

// open opens the worker's lead tab from its address.
func (w worker) open(a *appProc) (appPage, error) {
	f, err := w.p.OpenLeadTab(simulator.SeedSales, w.lead, "en")
	if err != nil {
		return appPage{}, err
	}
	return postPage(w.client, f.URL, f.Form, "Sec-Fetch-Site", "cross-site", "Origin", w.p.URL())
}

// click submits the tab's removal from the worker's address.
func (w worker) click(a *appProc, tab appPage) (appPage, error) {
	form := tab.doc.Find("#remove-form")
	action, _ := form.Attr("action")
	ctx, _ := form.Find(`input[name=ctx]`).Attr("value")
	return postPage(w.client, a.base+action, url.Values{"ctx": {ctx}}, "Sec-Fetch-Site", "same-origin", "Origin", a.base)
}

// procMemory reads a process's peak resident set size (VmHWM) and the
// part of its current resident set that is file-backed (RssFile: the
// binary's pages), in bytes.
func procMemory(b *testing.B, pid int) (peak, file int64) {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)) // #nosec G304 -- procfs of our child
	require.NoError(b, err)
	defer f.Close()
	kB := func(rest string) int64 {
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		require.NoError(b, err)
		return kb << 10
	}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			peak = kB(rest)
		}
		if rest, ok := strings.CutPrefix(s.Text(), "RssFile:"); ok {
			file = kB(rest)
		}
	}
	require.NotZero(b, peak, "no VmHWM in /proc status")
	return peak, file
}
