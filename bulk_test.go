package main

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// seedBulk adds n leads, each with one to three contacts, and returns
// every lead of the portal with contacts (the seeded ones before them
// included: an empty filter matches them all) and how many links they
// have.
func seedBulk(p *simulator.Portal, n int) (leads []int, links int) {
	added := p.SeedLeads(simulator.BulkOptions{Leads: n, Seed: 2026, WithContacts: 1})
	for id := 1; id <= added[len(added)-1]; id++ {
		if n := len(p.LeadContacts(id)); n > 0 {
			leads = append(leads, id)
			links += n
		}
	}
	return leads, links
}

// startBulk opens the admins' page as the portal's admin and presses
// Start with an empty filter; it returns the page's admin context.
func (a *appProc) startBulk(p *simulator.Portal) string {
	a.t.Helper()
	f, err := p.OpenApp(simulator.SeedAdmin, "en")
	require.NoError(a.t, err)
	pg, err := a.frame(p, f)
	require.NoError(a.t, err)
	require.Equal(a.t, http.StatusOK, pg.status, pg.body)
	form := pg.doc.Find("#bulk-form")
	require.Equal(a.t, 1, form.Length(), pg.body)
	ctx := form.Find(`input[name=ctx]`).AttrOr("value", "")
	res, err := a.post(a.base+form.AttrOr("action", ""), url.Values{"ctx": {ctx}, "op": {"start"}},
		"Sec-Fetch-Site", "same-origin", "Origin", a.base)
	require.NoError(a.t, err)
	require.Equal(a.t, http.StatusOK, res.status, res.body)
	require.Contains(a.t, res.doc.Find("#banner").Text(), "The run has started")
	return ctx
}

// deletesOf counts the successful crm.lead.contact.items.delete sub-calls
// per lead.
func deletesOf(p *simulator.Portal) map[string]int {
	out := map[string]int{}
	for _, c := range p.CallsTo("crm.lead.contact.items.delete") {
		if c.HTTPStatus == http.StatusOK {
			out[c.Params.Get("id")]++
		}
	}
	return out
}

// requireDoneOnce checks what the portal and the app's store say after a
// run over leads: no link left, each deleted exactly once, no request
// refused for the rate, one history entry per lead, the run done.
// leads all have links.
func requireDoneOnce(t *testing.T, a *appProc, p *simulator.Portal, leads []int, links int) {
	t.Helper()
	for _, id := range leads {
		require.Empty(t, p.LeadContacts(id), "lead %d", id)
	}
	deletes := deletesOf(p)
	require.Len(t, deletes, len(leads))
	for k, n := range deletes {
		require.Equal(t, 1, n, "lead %s unlinked once", k)
	}
	requests := 0
	var first, last time.Time
	for _, c := range p.Calls() {
		require.NotEqual(t, "QUERY_LIMIT_EXCEEDED", c.Error, "the portal never refused a request for the rate")
		if !c.Batch && (c.Method == "batch") {
			if requests == 0 {
				first = c.Time
			}
			requests, last = requests+1, c.Time
		}
	}
	master, err := hex.DecodeString(a.env["APP_SECRET"])
	require.NoError(t, err)
	keys, err := secret.NewKeyring(master)
	require.NoError(t, err)
	st, err := openStore(t.Context(), a.env["DATABASE_URL"], keys)
	require.NoError(t, err)
	defer st.Close()
	run, err := st.LatestBulkRun(t.Context(), p.MemberID())
	require.NoError(t, err)
	assert.Equal(t, store.RunDone, run.State)
	assert.EqualValues(t, links, run.Removed)
	assert.GreaterOrEqual(t, run.Leads, int64(len(leads)))
	h, err := st.History(t.Context(), p.MemberID(), 10*len(leads))
	require.NoError(t, err)
	seen := map[int64]int{}
	for _, e := range h {
		if e.RunID == run.ID {
			seen[e.LeadID]++
		}
	}
	for _, id := range leads {
		require.Equal(t, 1, seen[int64(id)], "lead %d recorded once", id)
	}
	t.Logf("%d leads, %d links: %d batch requests between %s and %s (%v)", len(leads), links, requests,
		first.Format(time.TimeOnly), last.Format(time.TimeOnly), last.Sub(first).Round(time.Millisecond))
}

var (
	buildOnce sync.Once
	builtApp  string
	buildErr  error
)

// appBinary builds the app once per test binary, for tests that need it
// as a process of its own (kill -9).
func appBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "leadcontacts-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtApp = filepath.Join(dir, "leadcontacts")
		out, err := exec.Command("go", "build", "-o", builtApp, ".").CombinedOutput() // #nosec G204 -- the test builds its own module
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	require.NoError(t, buildErr)
	return builtApp
}

// process runs the app binary with a's environment and waits until it
// answers; the returned command is killed when the test ends.
func (a *appProc) process(out *testsync.Buffer) *exec.Cmd {
	a.t.Helper()
	cmd := exec.Command(appBinary(a.t.(*testing.T))) // #nosec G204 -- the binary the test built
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range a.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(a.t, cmd.Start())
	a.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(a.t, func() bool {
		resp, err := http.Get(a.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond, "the app did not start:\n%s", out.String())
	return cmd
}

// A bulk run over 2,000 leads survives a kill -9 of the app halfway: the
// restarted app resumes it where it stopped (its lease lapses, River's
// leader finds it stale), and no link is deleted twice nor any lead
// recorded twice; the portal's 2 requests per second are respected
// throughout (it never answers QUERY_LIMIT_EXCEEDED).
func TestBulkRunSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the app")
	}
	a := newAppProc(t)
	var out testsync.Buffer
	cmd := a.process(&out)
	p := a.addInstalledPortal()
	leads, links := seedBulk(p, 2000)
	start := time.Now()
	a.startBulk(p)
	require.Eventually(t, func() bool { return len(deletesOf(p)) >= len(leads)/2 }, 60*time.Second, 10*time.Millisecond,
		"the run did not get halfway:\n%s", out.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_, _ = cmd.Process.Wait()
	halfway := len(deletesOf(p))
	require.Less(t, halfway, len(leads), "killed before the end")
	t.Logf("killed after %d of %d leads, %v in", halfway, len(leads), time.Since(start).Round(time.Millisecond))

	a.process(&out)
	require.Eventually(t, func() bool { return len(deletesOf(p)) == len(leads) }, 120*time.Second, 50*time.Millisecond,
		"the run did not resume and finish:\n%s", out.String())
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `"msg":"bulk run done"`) },
		20*time.Second, 20*time.Millisecond)
	t.Logf("whole run, kill and restart included: %v", time.Since(start).Round(time.Millisecond))
	requireDoneOnce(t, a, p, leads, links)
}

// Two instances on one PostgreSQL database: whichever works the run, it
// is done once; stopping one halfway (a deploy) leaves it to the other.
func TestBulkRunOnTwoInstancesIsDoneOnce(t *testing.T) {
	dsn := storetest.FreshSchema(t, "bulk_")
	a := newAppProc(t)
	a.env["DATABASE_URL"] = dsn
	b := &appProc{t: t, sim: a.sim, env: map[string]string{}}
	for k, v := range a.env {
		b.env[k] = v
	}
	addr := freeAddr(t)
	b.env["ADDR"], b.base = addr, "http://"+addr
	t.Cleanup(func() {
		if b.cancel != nil {
			_ = b.stop()
		}
		if t.Failed() {
			t.Logf("instance b:\n%s", b.output())
		}
	})
	a.start()
	b.start()
	p := a.addInstalledPortal()
	leads, links := seedBulk(p, 1500)
	a.startBulk(p)
	require.Eventually(t, func() bool { return len(deletesOf(p)) >= len(leads)/3 }, 60*time.Second, 10*time.Millisecond)
	require.NoError(t, a.stop(), "a deploy stops one instance")
	require.Eventually(t, func() bool { return len(deletesOf(p)) == len(leads) }, 120*time.Second, 50*time.Millisecond,
		"the other instance did not finish the run:\na:\n%s\nb:\n%s", a.output(), b.output())
	require.NoError(t, b.stop())
	requireDoneOnce(t, a, p, leads, links)
	all := a.output() + b.output()
	assert.Equal(t, 1, strings.Count(all, `"msg":"bulk run done"`), "one instance finished it")
}
