//go:build !race

// The browser tests run without the race detector: chromedp v0.23.0 races
// with itself when it attaches to a cross-site iframe (target.go, domEvent
// against documentUpdated), which no code of ours can avoid. .ci/run runs
// them in a step of their own, after the -race run of everything else.

package main

// The harness of the browser tests (browser_test.go): the demo started
// in-process, one headless Chromium per test, a recorder of everything the
// portal page and the app's frames report, and the cookie probe.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	// stepTimeout bounds one user-visible step (a navigation, a wait for an
	// element). Every step takes well under a second on a CI runner; the
	// margin is for the race detector on a busy machine. A step that hangs
	// fails with its name instead of eating go test's 10 minutes.
	stepTimeout = 15 * time.Second
	// startTimeout bounds the start of the demo and of the browser.
	startTimeout = 20 * time.Second
)

// chromiumPath finds Debian's Chromium. Without it the browser tests skip
// locally, but fail in CI, which must never skip them silently.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is not installed, and CI must run the browser tests: install Debian's chromium package")
	}
	t.Skip("Chromium is not installed (apt-get install chromium); CI runs these tests")
	return ""
}

// runningDemo is a running `leadcontacts -demo`: the simulated portal and
// the app, started through run exactly as the binary does.
type runningDemo struct {
	portal string   // origin of the simulated portal, http://localhost:PORT
	app    string   // origin of the app, http://127.0.0.1:PORT
	out    *lineLog // everything run printed, shown when the test fails
}

// startDemoApp runs the demo on free ports and stops it when the test ends:
// run's context is canceled and run must return nil (a clean shutdown).
func startDemoApp(t *testing.T) *runningDemo {
	t.Helper()
	getenv := func(key string) string {
		if key == "ADDR" || key == "DEMO_PORTAL_ADDR" {
			return "127.0.0.1:0" // a free port, so tests never collide
		}
		return "" // a fresh SQLite file per run: no state leaks between tests
	}
	d := &runningDemo{out: &lineLog{}}
	d.serve(t, []string{"-demo"}, getenv, nil)
	return d
}

// serve runs run with args and getenv until the test ends, collecting what
// it prints in d.out, and returns once the app serves. Then run's context
// is canceled, run must return nil (a clean shutdown), and stopped (if
// any) cleans up after it.
func (d *runningDemo) serve(t *testing.T, args []string, getenv func(string) string, stopped func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	exited := make(chan struct{})
	var runErr error
	go func() {
		runErr = run(ctx, args, getenv, pw)
		_ = pw.Close()
		close(exited)
	}()

	ready := make(chan string, 1)
	go func() {
		// JSON log lines, after the demo's "Demo portal: URL"; the
		// "serving" record names the app's base URL, or in the demo
		// (which names no URL but the portal's) its address.
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			d.out.add(line)
			if u, ok := strings.CutPrefix(line, "Demo portal: "); ok {
				d.portal = strings.TrimSuffix(u, "/") // read once ready is sent
			}
			var rec struct {
				Msg     string `json:"msg"`
				Addr    string `json:"addr"`
				BaseURL string `json:"base_url"`
			}
			if !sent && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
				ready <- strings.TrimSuffix(cmp.Or(rec.BaseURL, "http://"+rec.Addr), "/")
				sent = true
			}
		}
		// Keep draining: a writer blocked on the pipe would wedge run.
		_, _ = io.Copy(io.Discard, pr)
	}()

	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
			assert.NoError(t, runErr, "run must return nil after its context is canceled")
		case <-time.After(30 * time.Second):
			t.Error("the app did not shut down within 30s of its context being canceled")
		}
		if stopped != nil {
			stopped()
		}
		if t.Failed() {
			t.Logf("app output:\n%s", d.out)
		}
	})

	select {
	case d.app = <-ready:
	case <-exited:
		t.Fatalf("the app exited before serving: %v\n%s", runErr, d.out)
	case <-time.After(startTimeout):
		t.Fatalf("the app did not start within %s:\n%s", startTimeout, d.out)
	}
	// The test means something only if the app's frame is cross-site, as
	// with a real portal: cookies and CSP frame-ancestors depend on it.
	require.Equal(t, "localhost", hostOf(d.portal), "the portal must run on localhost")
	require.Equal(t, "127.0.0.1", hostOf(d.app), "the app must run on 127.0.0.1")
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// lineLog is a goroutine-safe list of lines.
type lineLog struct {
	mu sync.Mutex
	l  []string
}

func (l *lineLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, s)
}

func (l *lineLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}

func (l *lineLog) String() string { return strings.Join(l.all(), "\n") }

// cookiePolicy is the browser's "Third-party cookies" setting.
type cookiePolicy struct {
	name string
	// controlsMode is Chromium's pref profile.cookie_controls_mode, what
	// chrome://settings/cookies writes: 0 allows third-party cookies, 1
	// blocks them. The test writes it explicitly in both cases, because the
	// default differs between builds (Chromium 156 headless blocks).
	controlsMode int
}

func (p cookiePolicy) allowsThirdParty() bool { return p.controlsMode == 0 }

var (
	thirdPartyCookiesAllowed = cookiePolicy{name: "third-party-cookies-allowed", controlsMode: 0}
	thirdPartyCookiesBlocked = cookiePolicy{name: "third-party-cookies-blocked", controlsMode: 1}
)

// browser is one headless Chromium with one tab. Site isolation stays on,
// as in a real browser: the app's cross-site iframe is a target of its own,
// which the browser attaches to (and records) as soon as it appears.
type browser struct {
	ctx      context.Context // the tab
	rec      *recorder
	chromedp *lineLog // chromedp's own error and log lines, shown on failure

	mu     sync.Mutex
	frames map[target.ID]attachedFrame // nil once the browser is closing
}

// attachedFrame is the context of an iframe target the browser attached to.
type attachedFrame struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// newBrowser starts Chromium with a fresh profile and the given cookie
// setting, and closes it when the test ends.
func newBrowser(t *testing.T, cookies cookiePolicy) *browser {
	t.Helper()
	execPath := chromiumPath(t)
	profile := t.TempDir() // removed after the browser exits (cleanups run LIFO)
	writePreferences(t, profile, cookies)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// The machine has no internet, and the test must not depend on it:
		// every name but the two local sites fails to resolve, so nothing
		// (a page, a frame, a browser service) can leave the machine.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{rec: newRecorder(), chromedp: &lineLog{}, frames: map[target.ID]attachedFrame{}}
	keep := func(format string, args ...any) { b.chromedp.add(fmt.Sprintf(format, args...)) }
	ctx, cancelTab := chromedp.NewContext(actx,
		chromedp.WithListener(b.rec.listener("portal page")),
		chromedp.WithErrorf(keep), chromedp.WithLogf(keep))
	b.ctx = ctx

	// The first Do starts the browser and binds it to ctx, so it must not
	// get a timeout of its own (the README's "The browser closes when the
	// timeout of my context ends").
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			cancelTab()
			cancelAlloc()
		}
		require.NoError(t, err, "start Chromium")
	case <-time.After(startTimeout):
		cancelTab()
		cancelAlloc()
		t.Fatalf("Chromium did not start within %s", startTimeout)
	}
	// The version explains a difference between two machines, such as a
	// changed default of the cookie settings.
	if v, err := chromedp.CallBrowser(ctx, cdpbrowser.GetVersion, cdp.Empty{}); err == nil {
		t.Logf("%s (%s), third-party cookies: %s", v.Product, execPath, cookies.name)
	}

	wctx, stopWatching := context.WithCancel(ctx)
	watching := b.watchFrames(wctx)
	t.Cleanup(func() {
		if t.Failed() {
			b.report(t)
		}
		// Stop attaching, detach from the frames while the browser still
		// answers, then close it gracefully and wait for the process. The
		// timeout keeps a wedged browser from hanging go test.
		stopWatching()
		<-watching
		b.mu.Lock()
		for _, f := range b.frames {
			f.cancel()
		}
		b.frames = nil
		b.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(cctx)
		cancelTab()
		cancelAlloc()
	})
	return b
}

// report logs what the browser saw, for a failed test: the problems
// recorded so far (a JavaScript error often explains a missing element),
// the requests, and what the tab and its frames show now.
func (b *browser) report(t *testing.T) {
	t.Helper()
	if p := b.rec.allProblems(); len(p) > 0 {
		t.Logf("the browser reported:\n%s", strings.Join(p, "\n"))
	}
	b.rec.mu.Lock()
	var reqs []string
	for _, q := range b.rec.requests {
		reqs = append(reqs, q.target+": "+q.method+" "+q.url)
	}
	b.rec.mu.Unlock()
	t.Logf("requests seen:\n%s", strings.Join(reqs, "\n"))
	if l := b.chromedp.all(); len(l) > 0 {
		t.Logf("chromedp:\n%s", strings.Join(l, "\n"))
	}
	show := func(name string, ctx context.Context) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		where, err := chromedp.Run(sctx, chromedp.Location())
		if err != nil {
			t.Logf("%s: gone (%v)", name, err) // an earlier page's frame
			return
		}
		text, err := chromedp.Run(sctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		if err != nil {
			text = "(unreadable: " + err.Error() + ")"
		}
		t.Logf("%s at %s shows:\n%.1500s", name, where, text)
	}
	show("the tab", b.ctx)
	b.mu.Lock()
	frames := maps.Clone(b.frames)
	b.mu.Unlock()
	for id, f := range frames {
		show("frame "+shortID(id), f.ctx)
	}
}

// writePreferences sets the profile's cookie setting before Chromium reads
// it, exactly where chrome://settings would have saved it.
func writePreferences(t *testing.T, profile string, cookies cookiePolicy) {
	t.Helper()
	prefs := map[string]any{"profile": map[string]any{"cookie_controls_mode": cookies.controlsMode}}
	b, err := json.Marshal(prefs)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(profile, "Default"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(profile, "Default", "Preferences"), b, 0o600))
}

// watchFrames attaches to every iframe target as soon as the browser
// creates it. Attaching early, with the recorder installed before the
// first command (WithListener), catches the frame's console messages and
// exceptions from its start: Runtime.enable and Log.enable replay the ones
// logged before the attach. The returned channel closes when the watcher
// has stopped, after ctx ends.
func (b *browser) watchFrames(ctx context.Context) <-chan struct{} {
	created := chromedp.BrowserEvents(ctx, target.TargetCreated)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for ev, err := range created {
			if err != nil {
				return
			}
			info := ev.TargetInfo
			if info == nil || info.Type != "iframe" {
				continue
			}
			wg.Go(func() { b.attachFrame(ctx, info.TargetID) })
		}
	}()
	return done
}

func (b *browser) attachFrame(ctx context.Context, id target.ID) {
	// WithDetachOnCancel: canceling the context of an iframe target must
	// only detach. Closing the "target" would close the whole tab.
	fctx, cancel := chromedp.NewContext(ctx,
		chromedp.WithTargetID(id),
		chromedp.WithDetachOnCancel(),
		chromedp.WithListener(b.rec.listener("frame "+shortID(id))),
	)
	// The first Do attaches the target and binds it to fctx: no timeout
	// here either. It ends with the tab, or fails when the frame went away
	// meanwhile (an installer frame that has already finished).
	if err := chromedp.Do(fctx); err != nil {
		cancel()
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.frames == nil { // the browser is closing
		cancel()
		return
	}
	b.frames[id] = attachedFrame{fctx, cancel}
}

func shortID(id target.ID) string {
	s := string(id)
	if len(s) > 8 {
		s = s[:8]
	}
	return s
}

// appFrame returns the context of the app's iframe inside the tab: the
// iframe target whose document comes from the app. It waits until the
// portal's form POST has put the app into the frame and the watcher has
// attached to it, and until the app's scripts have run, so that a click
// meets the enhanced page and not its no-JS fallback.
func (b *browser) appFrame(t *testing.T, d *runningDemo) context.Context {
	t.Helper()
	page := chromedp.FromContext(b.ctx).Target.TargetID
	deadline := time.Now().Add(stepTimeout)
	var last []*target.Info
	for time.Now().Before(deadline) {
		infos, err := chromedp.Targets(b.ctx)
		require.NoError(t, err, "list the browser's targets")
		last = infos
		for _, info := range infos {
			if info.Type != "iframe" || info.ParentID != page || !strings.HasPrefix(info.URL, d.app+"/") {
				continue
			}
			b.mu.Lock()
			fctx := b.frames[info.TargetID].ctx
			b.mu.Unlock()
			if fctx == nil {
				continue // created a moment ago; the watcher is attaching
			}
			// Scripts are at the end of the body and app.js enhances the
			// form on DOMContentLoaded: "complete" means both have run.
			ready, err := runStep(t, fctx, "wait for the app's page to load",
				chromedp.Poll[bool](`document.readyState === "complete"`, chromedp.WithPollingInterval(20*time.Millisecond)))
			require.NoError(t, err)
			require.True(t, ready)
			return fctx
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The usual causes show in the recorded problems: a CSP
	// frame-ancestors refusal (the frame then shows chrome-error://), or a
	// script error in the portal page before its form POST.
	var seen []string
	for _, info := range last {
		seen = append(seen, fmt.Sprintf("%s %s (parent %s, attached %v)", info.Type, info.URL, shortID(info.ParentID), info.Attached))
	}
	t.Fatalf("the app (%s) never appeared in the tab's iframe within %s.\ntargets:\n%s\nbrowser problems:\n%s",
		d.app, stepTimeout, strings.Join(seen, "\n"), strings.Join(b.rec.allProblems(), "\n"))
	return nil
}

// doStep runs steps on a tab or frame context within stepTimeout; what names
// the step in the failure message.
// Each action is its own step, so that a retry (see runStep) repeats only
// the action that failed, never a navigation before it.
func doStep(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	for _, s := range steps {
		_, err := runStep(t, ctx, what, s)
		require.NoError(t, err)
	}
}

// runStep runs one action that returns a value within stepTimeout.
//
// chromedp re-reads a frame's DOM when its document changes (the form POST
// of the removal), and that invalidates the node and execution context ids
// a query may hold at that moment. Such an error says nothing about the
// page, so the step is run again; any other error ends it.
func runStep[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) (T, error) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	for {
		v, err := chromedp.Run(sctx, a)
		if err == nil {
			return v, nil
		}
		if !staleDOM(err) || sctx.Err() != nil {
			return v, fmt.Errorf("%s: %w", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// staleDOM reports whether err comes from a node or context id that a
// document change invalidated.
func staleDOM(err error) bool {
	var cerr *cdproto.Error
	if !errors.As(err, &cerr) {
		return false
	}
	for _, m := range []string{
		"No node with given id found",
		"Could not find node with given id",
		"Node with given id does not belong to the document",
		"Cannot find context with specified id",
		"Execution context was destroyed",
		// A poll evaluated while the form POST replaces the document.
		"Inspected target navigated or closed",
	} {
		if strings.Contains(cerr.Message, m) {
			return true
		}
	}
	return false
}

// readStep is runStep that fails the test on error.
func readStep[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := runStep(t, ctx, what, a)
	require.NoError(t, err)
	return v
}

// textsOf returns the trimmed text of every element matching a CSS selector,
// now, without waiting for one to exist.
func textsOf(t *testing.T, ctx context.Context, what, selector string) []string {
	t.Helper()
	js := fmt.Sprintf(`Array.from(document.querySelectorAll(%q), e => e.textContent.trim())`, selector)
	return readStep(t, ctx, what, chromedp.Evaluate[[]string](js))
}

// recorder collects what must not happen in the portal page or the app's
// frames: console errors, uncaught exceptions, browser log errors (CSP
// violations, failed loads), requests to anything but the two local sites,
// and failed requests. It also keeps every request, so a test can show
// that a click sent nothing. Its listeners run on the browser's read loop:
// they only append under a mutex.
type recorder struct {
	mu       sync.Mutex
	problems []string
	requests []seenRequest
	byID     map[string]seenRequest // target + request id -> request
	cookies  map[string]string      // target + request id -> Cookie header sent
}

type seenRequest struct {
	target, method, url string
}

func newRecorder() *recorder {
	return &recorder{byID: map[string]seenRequest{}, cookies: map[string]string{}}
}

func (r *recorder) listener(where string) func(ev any) {
	return func(ev any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				r.problems = append(r.problems, fmt.Sprintf("%s: console.%s: %s", where, e.Type, argsText(e.Args)))
			}
		case *runtime.EventExceptionThrown:
			r.problems = append(r.problems, fmt.Sprintf("%s: uncaught exception: %s", where, exceptionText(e.ExceptionDetails)))
		case *log.EventEntryAdded:
			if e.Entry != nil && e.Entry.Level == log.EntryLevelError && !localFavicon(e.Entry.URL) {
				r.problems = append(r.problems, fmt.Sprintf("%s: browser log (%s): %s [%s]", where, e.Entry.Source, e.Entry.Text, e.Entry.URL))
			}
		case *network.EventRequestWillBeSent:
			req := seenRequest{target: where, method: e.Request.Method, url: e.Request.URL}
			r.requests = append(r.requests, req)
			r.byID[where+" "+string(e.RequestID)] = req
			if !isLocalURL(e.Request.URL) {
				r.problems = append(r.problems, fmt.Sprintf("%s: request to a third party: %s %s", where, req.method, req.url))
			}
		case *network.EventRequestWillBeSentExtraInfo:
			// The raw headers as sent on the wire, cookies included.
			for k, v := range e.Headers {
				if strings.EqualFold(k, "cookie") {
					r.cookies[where+" "+string(e.RequestID)] = fmt.Sprint(v)
				}
			}
		case *network.EventLoadingFailed:
			req, known := r.byID[where+" "+string(e.RequestID)]
			switch {
			case !known:
				// DevTools' own fetches (a cache lookup while attaching)
				// have no requestWillBeSent; they are not the page's.
			case !isLocalURL(req.url):
				r.problems = append(r.problems, fmt.Sprintf("%s: failed request to a third party: %s %s: %s", where, req.method, req.url, e.ErrorText))
			case e.Canceled:
				// A navigation (the form POST) cancels what the old
				// document still had in flight.
			default:
				r.problems = append(r.problems, fmt.Sprintf("%s: failed request: %s %s: %s %s", where, req.method, req.url, e.ErrorText, e.BlockedReason))
			}
		}
	}
}

// allProblems returns what was recorded so far.
func (r *recorder) allProblems() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// requestsTo returns the recorded requests whose URL starts with prefix.
func (r *recorder) requestsTo(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.requests {
		if strings.HasPrefix(q.url, prefix) {
			out = append(out, q.method+" "+q.url)
		}
	}
	return out
}

// cookiesSent returns, for each recorded request with that method whose
// URL starts with prefix, the Cookie header it carried ("" for none).
func (r *recorder) cookiesSent(method, prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for key, q := range r.byID {
		if q.method == method && strings.HasPrefix(q.url, prefix) {
			out = append(out, r.cookies[key])
		}
	}
	return out
}

// deleteAppCookies removes every cookie of the app's site from the jar,
// partitioned (CHIPS) ones included, which third-party cookie blocking
// lets through; afterwards the app has no cookie at all.
func (b *browser) deleteAppCookies(t *testing.T) {
	t.Helper()
	for _, c := range b.appCookies(t) {
		_, err := chromedp.Call(b.ctx, network.DeleteCookies, network.DeleteCookiesParams{
			Name: c.Name, Domain: c.Domain, Path: c.Path, PartitionKey: c.PartitionKey,
		})
		require.NoError(t, err, "delete the app's cookie %s", c.Name)
	}
	require.Empty(t, b.appCookies(t), "the app's cookies are gone")
}

// isLocalURL reports whether a URL stays on the two sites of the test (or
// needs no network at all).
func isLocalURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob", "about":
		return true
	case "http", "https", "ws", "wss":
		h := u.Hostname()
		return h == "localhost" || h == "127.0.0.1"
	}
	return false // chrome-error:// (a refused frame) and the like
}

// localFavicon reports whether a URL is /favicon.ico on a local site.
// Chromium itself fetches it for a page without an icon link; the
// simulated portal has none and answers 404, which Chromium logs as an
// error of the page. It is the browser's request, not the page's.
func localFavicon(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Path == "/favicon.ico" && isLocalURL(rawURL)
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, remoteText(a))
	}
	return strings.Join(parts, " ")
}

func remoteText(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	if len(o.Value) > 0 {
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
		return string(o.Value)
	}
	if o.Description != "" {
		return o.Description
	}
	if o.UnserializableValue != "" {
		return string(o.UnserializableValue)
	}
	return string(o.Type)
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d:%d)", s, d.URL, d.LineNumber+1, d.ColumnNumber+1)
}

// cookieProbe is a tiny server, reachable as both of the test's sites, that
// tells whether the browser keeps third-party cookies between them: a page
// on localhost frames a page on 127.0.0.1 (the portal's and the app's
// sites; cookies ignore ports). The framed
// response sets a plain SameSite=None; Secure cookie, plus a Partitioned
// one as a control: CHIPS cookies survive third-party cookie blocking, so
// the control proves the framed requests happened and carried cookies at
// all. A second framed request reports which cookies came back.
type cookieProbe struct {
	top, inner string      // http://localhost:PORT, http://127.0.0.1:PORT
	cookie     chan string // the Cookie header of each /check request
}

const (
	probeCookie        = "lc_probe"
	probeControlCookie = "lc_probe_partitioned"
)

func startCookieProbe(t *testing.T) *cookieProbe {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	p := &cookieProbe{
		top:    fmt.Sprintf("http://localhost:%d", port),
		inner:  fmt.Sprintf("http://127.0.0.1:%d", port),
		cookie: make(chan string, 1),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /top/{step}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>probe</title><link rel="icon" href="data:,"><iframe src="%s/%s"></iframe>`, p.inner, r.PathValue("step"))
	})
	mux.HandleFunc("GET /set", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", probeCookie+"=1; Path=/; SameSite=None; Secure")
		w.Header().Add("Set-Cookie", probeControlCookie+"=1; Path=/; SameSite=None; Secure; Partitioned")
		fmt.Fprint(w, "set")
	})
	mux.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		select {
		case p.cookie <- r.Header.Get("Cookie"):
		default: // a repeated request; the first one counts
		}
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "checked")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// requireCookiePolicy proves that the browser's third-party cookie setting
// is in effect, with the probe, before the flow runs: in the blocked run
// the plain cookie must neither be stored nor sent back, in the allowed run
// it must be both, so the probe itself can fail. Both are checked on the
// wire (the Cookie header the probe server received) and in the cookie
// jar (Storage.getCookies). The jar is emptied afterwards, so both runs
// start the flow alike.
func (b *browser) requireCookiePolicy(t *testing.T, policy cookiePolicy) {
	t.Helper()
	p := startCookieProbe(t)
	// Navigate waits for the load event, which waits for the iframe.
	doStep(t, b.ctx, "cookie probe: frame 127.0.0.1 under localhost, set cookies", chromedp.Navigate(p.top+"/top/set"))
	doStep(t, b.ctx, "cookie probe: frame 127.0.0.1 under localhost again", chromedp.Navigate(p.top+"/top/check"))
	var header string
	select {
	case header = <-p.cookie:
	case <-time.After(stepTimeout):
		t.Fatal("cookie probe: the framed /check request never reached the probe server")
	}
	sent := map[string]bool{}
	for c := range strings.SplitSeq(header, ";") {
		name, _, _ := strings.Cut(strings.TrimSpace(c), "=")
		sent[name] = true
	}
	jar, err := chromedp.CallBrowser(b.ctx, storage.GetCookies, storage.GetCookiesParams{})
	require.NoError(t, err, "cookie probe: read the cookie jar")
	stored := false
	for _, c := range jar.Cookies {
		if c.Name == probeCookie && c.Domain == "127.0.0.1" && c.PartitionKey == nil {
			stored = true
		}
	}
	t.Logf("cookie probe (%s): 127.0.0.1 framed by localhost got Cookie: %q; plain cookie in the jar: %v", policy.name, header, stored)

	require.True(t, sent[probeControlCookie],
		"cookie probe broken: even the Partitioned control cookie was not sent back (Cookie: %q)", header)
	if policy.allowsThirdParty() {
		require.True(t, sent[probeCookie], "third-party cookies should be allowed, but the framed request did not send %s back (Cookie: %q)", probeCookie, header)
		require.True(t, stored, "third-party cookies should be allowed, but %s is not in the jar", probeCookie)
	} else {
		require.False(t, sent[probeCookie], "third-party cookies should be blocked, but the framed request sent %s back (Cookie: %q)", probeCookie, header)
		require.False(t, stored, "third-party cookies should be blocked, but %s is in the jar", probeCookie)
	}
	_, err = chromedp.CallBrowser(b.ctx, storage.ClearCookies, storage.ClearCookiesParams{})
	require.NoError(t, err, "cookie probe: clear the jar")
}

// appCookies returns the app's cookies in the jar, for the log and for the
// check that none of them is a plain (unpartitioned) third-party cookie.
func (b *browser) appCookies(t *testing.T) []*network.Cookie {
	t.Helper()
	jar, err := chromedp.CallBrowser(b.ctx, storage.GetCookies, storage.GetCookiesParams{})
	require.NoError(t, err, "read the cookie jar")
	var out []*network.Cookie
	for _, c := range jar.Cookies {
		if c.Domain == "127.0.0.1" {
			out = append(out, c)
		}
	}
	return out
}
