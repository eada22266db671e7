package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/internal/testsync"
	"github.com/b24apps/leadcontacts/manifest"
	"github.com/b24apps/leadcontacts/simulator"
)

// appProc is the app started through run, as the binary starts it, with a
// fixed address and database so it can be stopped and started again, and
// a simulated Bitrix24 (OAuth server and portals) around it.
type appProc struct {
	t      testing.TB
	sim    *simulator.Simulator
	env    map[string]string
	base   string
	out    testsync.Buffer // what the app logs
	cancel context.CancelFunc
	exited chan error
}

const harnessClientID, harnessClientSecret = "app.harness", "harness-client-secret-0123456789"

// newAppProc prepares (does not start) the app on a free loopback port and
// a SQLite file in a temporary directory.
func newAppProc(t testing.TB) *appProc {
	t.Helper()
	addr := freeAddr(t)
	return newAppProcAt(t, addr, "http://"+addr, nil)
}

// newAppProcAt prepares the app to listen on addr and to be reached at
// base (its APP_BASE_URL: a proxy's address, or addr itself). events, when
// not nil, carries the simulator's event POSTs (to trust a proxy's CA).
func newAppProcAt(t testing.TB, addr, base string, events http.RoundTripper) *appProc {
	t.Helper()
	m, err := manifest.Parse(appJSON)
	require.NoError(t, err)
	sim, err := simulator.New(simulator.Options{
		App: simulator.App{ClientID: harnessClientID, ClientSecret: harnessClientSecret, Scope: m.Scope,
			InstallURL: manifest.Absolute(mustURL(t, base), m.Install), AppURL: manifest.Absolute(mustURL(t, base), m.Handler)},
		AllowLocalHandlers: true,
		EventTransport:     events,
	})
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	master := make([]byte, 32)
	for i := range master {
		master[i] = byte(i + 1)
	}
	a := &appProc{t: t, sim: sim, base: "http://" + addr, env: map[string]string{
		"B24_CLIENT_ID":     harnessClientID,
		"B24_CLIENT_SECRET": harnessClientSecret,
		"APP_BASE_URL":      base,
		"APP_SECRET":        hex.EncodeToString(master),
		"DATABASE_URL":      "sqlite:" + filepath.Join(t.TempDir(), "app.db"),
		"ADDR":              addr,
		"B24_OAUTH_SERVERS": sim.OAuthURL(),
		"B24_ALLOW_HTTP":    "true", // the simulated portal and OAuth server speak http
		"B24_JS_URL":        sim.JSURL(),
	}}
	t.Cleanup(func() {
		if a.cancel != nil {
			_ = a.stop()
		}
		if t.Failed() {
			t.Logf("app output:\n%s", a.output())
		}
	})
	return a
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}

func (a *appProc) output() string { return a.out.String() }

// start runs the app and waits until it answers.
func (a *appProc) start() {
	a.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.exited = make(chan error, 1)
	go func() { a.exited <- run(ctx, nil, func(k string) string { return a.env[k] }, &a.out) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(a.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-a.exited:
			a.t.Fatalf("the app exited at start: %v\n%s", err, a.output())
		default:
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("the app did not start:\n%s", a.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop cancels run's context, as SIGTERM does, and returns run's result.
func (a *appProc) stop() error {
	a.cancel()
	a.cancel = nil
	select {
	case err := <-a.exited:
		return err
	case <-time.After(40 * time.Second):
		return fmt.Errorf("run did not return within 40 s of its context being canceled")
	}
}

// appClient is a browser-less client: no cookies, no redirects.
var appClient = &http.Client{
	Timeout:       60 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// appPage is a fetched page of the app.
type appPage struct {
	status int
	body   string
	doc    *goquery.Document
}

func (a *appProc) post(target string, form url.Values, header ...string) (appPage, error) {
	return postPage(appClient, target, form, header...)
}

// postPage POSTs a form with a client and parses the answer as a page.
func postPage(c *http.Client, target string, form url.Values, header ...string) (appPage, error) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return appPage{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return appPage{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return appPage{}, err
	}
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(b))
	if err != nil {
		return appPage{}, err
	}
	return appPage{status: resp.StatusCode, body: string(b), doc: doc}, nil
}

// frame POSTs a frame exactly as the portal's page would.
func (a *appProc) frame(p *simulator.Portal, f simulator.Frame) (appPage, error) {
	return a.post(f.URL, f.Form, "Sec-Fetch-Site", "cross-site", "Origin", p.URL())
}

// installOn installs the app on a portal as its admin.
func (a *appProc) installOn(p *simulator.Portal) {
	a.t.Helper()
	f, err := p.BeginInstall(simulator.SeedAdmin)
	require.NoError(a.t, err)
	pg, err := a.frame(p, f)
	require.NoError(a.t, err)
	require.Equal(a.t, http.StatusOK, pg.status, pg.body)
	p.FinishInstall()
}

// addInstalledPortal adds a seeded portal to the simulator and installs
// the app on it.
func (a *appProc) addInstalledPortal() *simulator.Portal {
	a.t.Helper()
	p, err := a.sim.AddPortal(simulator.PortalOptions{Seed: true})
	require.NoError(a.t, err)
	a.installOn(p)
	return p
}

// session is a lead's tab that the salesperson opened, ready to click.
type session struct {
	p    *simulator.Portal
	lead int
	tab  appPage
}

// openSession opens the salesperson's tab of a lead, which must work.
func (a *appProc) openSession(t testing.TB, p *simulator.Portal, lead int) session {
	t.Helper()
	tab, err := a.openTabOn(p, simulator.SeedSales, lead)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, tab.status, tab.body)
	return session{p, lead, tab}
}

// openTabOn opens the lead tab as a user.
func (a *appProc) openTabOn(p *simulator.Portal, userID, leadID int) (appPage, error) {
	f, err := p.OpenLeadTab(userID, leadID, "en")
	if err != nil {
		return appPage{}, err
	}
	return a.frame(p, f)
}

// click submits the tab's removal as its script does.
func (a *appProc) click(tab appPage) (appPage, error) {
	form := tab.doc.Find("#remove-form")
	action, ok := form.Attr("data-action")
	if !ok {
		action, ok = form.Attr("action")
	}
	if !ok {
		return appPage{}, fmt.Errorf("tab has no remove form (status %d)", tab.status)
	}
	ctx, _ := form.Find(`input[name=ctx]`).Attr("value")
	return a.post(a.base+action, url.Values{"ctx": {ctx}}, "Sec-Fetch-Site", "same-origin", "Origin", a.base)
}

// addLeads adds n leads (ids from first) with contacts contacts each.
func addLeads(t testing.TB, p *simulator.Portal, first, n, contacts int) []int {
	t.Helper()
	ids := make([]int, n)
	for i := range ids {
		id := first + i
		p.AddLead(simulator.Lead{ID: id, Title: fmt.Sprintf("Lead %d", id), AssignedByID: simulator.SeedSales})
		for c := 1; c <= contacts; c++ {
			require.NoError(t, p.LinkContact(id, c, c*10, c == 1))
		}
		ids[i] = id
	}
	return ids
}

// refreshOutcomes counts the OAuth server's refresh answers since mark.
func refreshOutcomes(sim *simulator.Simulator, mark int) (ok, failed int, codes map[string]int) {
	codes = map[string]int{}
	for _, r := range sim.Refreshes()[mark:] {
		if r.GrantType != "refresh_token" {
			continue
		}
		if r.Status == http.StatusOK {
			ok++
		} else {
			failed++
			codes[r.Error]++
		}
	}
	return ok, failed, codes
}
