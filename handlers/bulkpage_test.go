package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// fakeQueue records what the app enqueues, as the job engine's table
// does: bulk runs by id, the automation rules' runs sealed (the engine
// itself is tested at the top level).
type fakeQueue struct {
	mu     sync.Mutex
	ids    []int64
	sealed []string
}

func (q *fakeQueue) EnqueueRobotRun(_ context.Context, sealed string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sealed = append(q.sealed, sealed)
	return nil
}

// takeRun returns the one rule's run queued since the last take.
func (q *fakeQueue) takeRun(t *testing.T) string {
	t.Helper()
	q.mu.Lock()
	defer q.mu.Unlock()
	require.Len(t, q.sealed, 1)
	s := q.sealed[0]
	q.sealed = nil
	return s
}

func (q *fakeQueue) EnqueueBulkRun(_ context.Context, id int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, id)
	return nil
}

func (q *fakeQueue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ids)
}

// press submits the bulk form with op, as its button would.
func (e *testEnv) press(p page, form, op string, extra url.Values) page {
	e.t.Helper()
	f := p.doc.Find(form)
	require.Equal(e.t, 1, f.Length(), "no %s: %s", form, p.body)
	v := e.fields(f)
	v.Set("op", op)
	for k, vals := range extra {
		v[k] = vals
	}
	return e.postForm(e.base+f.AttrOr("action", ""), v, "Sec-Fetch-Site", "same-origin", "Origin", e.base)
}

// The admin's whole flow on the page: the filter offers the portal's
// stages, Count says how many leads and links match, Start queues a run
// with the admin's session, the status poll and a reload show its
// progress, Pause and Resume take effect, and Undo puts the links back.
func TestBulkCardFlow(t *testing.T) {
	q := &fakeQueue{}
	e := newInstalledEnv(t, func(e *testEnv) { e.bulk = q })
	e.portal.SeedLeads(simulator.BulkOptions{Leads: 180, Seed: 11, WithContacts: 0.5})
	junk, links := 0, 0
	for id := 1; id <= 200; id++ {
		if l, ok := e.portal.Lead(id); ok && l.StatusID == "JUNK" {
			junk++
			links += len(e.portal.LeadContacts(id))
		}
	}

	admin := e.openApp(simulator.SeedAdmin, "en")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	assert.Equal(t, len(simulator.LeadStages()), admin.doc.Find(`#bulk-form input[name=stage]`).Length())
	assert.Equal(t, "Junk lead", admin.doc.Find(`#bulk-form input[value=JUNK]`).Parent().Text()[1:])

	counted := e.press(admin, "#bulk-form", "count", url.Values{"stage": {"JUNK"}})
	require.Equal(t, http.StatusOK, counted.status, counted.body)
	assert.Equal(t, strconv.Itoa(junk), text(counted, "#bulk-count-leads"))
	assert.Equal(t, strconv.Itoa(links), text(counted, "#bulk-count-links"))
	assert.Equal(t, 1, counted.doc.Find(`#bulk-form input[value=JUNK][checked]`).Length(), "the filter is kept")

	started := e.press(counted, "#bulk-form", "start", url.Values{"stage": {"JUNK"}})
	require.Equal(t, http.StatusOK, started.status, started.body)
	require.Equal(t, 1, q.count())
	run, err := e.st.LatestBulkRun(context.Background(), e.portal.MemberID())
	require.NoError(t, err)
	assert.Equal(t, store.RunQueued, run.State)
	assert.EqualValues(t, junk, run.Matched)
	assert.Equal(t, []string{"JUNK"}, run.Filter.Stages)
	assert.Equal(t, "Alice Admin", run.UserName)
	assert.Equal(t, 1, started.doc.Find("#bulk-pause").Length())
	again := e.press(started, "#bulk-form", "start", nil)
	assert.Contains(t, text(again, "#banner"), "already in progress", "one run at a time")

	paused := e.press(started, "#bulk-control", "pause", nil)
	require.Equal(t, http.StatusOK, paused.status, paused.body)
	assert.Equal(t, "Paused", text(paused, "#bulk-state"))
	require.NoError(t, e.h.WorkBulkRun(context.Background(), run.ID))
	assert.Zero(t, e.bulkRun(run.ID).Leads, "a paused run does nothing")

	resumed := e.press(paused, "#bulk-control", "resume", nil)
	require.Equal(t, http.StatusOK, resumed.status, resumed.body)
	assert.Equal(t, 2, q.count(), "resume enqueues the run again")
	require.NoError(t, e.h.WorkBulkRun(context.Background(), run.ID))

	status := e.press(resumed, "#bulk-control", "", nil)
	assert.Equal(t, http.StatusBadRequest, status.status, "an unknown op is refused")
	poll := e.postForm(e.base+"/app/bulk/status", e.fields(resumed.doc.Find("#bulk-control")), "Sec-Fetch-Site", "same-origin", "Origin", e.base)
	require.Equal(t, http.StatusOK, poll.status, poll.body)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(poll.body), &v))
	assert.Equal(t, "done", v["state"])
	assert.EqualValues(t, junk, v["leads"])
	assert.EqualValues(t, links, v["removed"])

	reload := e.openApp(simulator.SeedAdmin, "en")
	assert.Equal(t, strconv.Itoa(junk), reload.doc.Find("#bulk-progress").AttrOr("value", ""), "a reload keeps the progress")
	assert.Equal(t, "Finished", text(reload, "#bulk-state"))
	undo := e.press(reload, "#bulk-control", "undo", nil)
	require.Equal(t, http.StatusOK, undo.status, undo.body)
	require.NoError(t, e.h.WorkBulkRun(context.Background(), run.ID))
	restored := 0
	for id := 1; id <= 200; id++ {
		if l, ok := e.portal.Lead(id); ok && l.StatusID == "JUNK" {
			restored += len(e.portal.LeadContacts(id))
		}
	}
	assert.Equal(t, links, restored, "the undo linked every contact again")
}

// A filter the form cannot have sent is refused before any call.
func TestBulkCardRefusesAForgedFilter(t *testing.T) {
	e := newInstalledEnv(t, func(e *testEnv) { e.bulk = &fakeQueue{} })
	admin := e.openApp(simulator.SeedAdmin, "en")
	for _, bad := range []url.Values{{"stage": {"NEW]&x[=1"}}, {"from": {"yesterday"}}, {"responsible": {"-3"}}} {
		p := e.press(admin, "#bulk-form", "count", bad)
		assert.Equal(t, http.StatusBadRequest, p.status, "%v", bad)
	}
}

// A failure met by a bulk button says what it is, as the re-bind and the
// tab do: a session Bitrix24 no longer accepts asks to reopen the app
// (401), a refusal or fault of Bitrix24 is explained with its code; never
// an internal error.
func TestBulkCardExplainsFailures(t *testing.T) {
	for name, c := range map[string]struct {
		fault  simulator.Fault
		status int
		text   string
	}{
		"session refused": {simulator.Fault{Method: "batch", Status: http.StatusUnauthorized, Code: "NO_AUTH_FOUND",
			Description: "Wrong authorization data", Times: 20}, http.StatusUnauthorized,
			"Your session has expired. Open the app again from the left menu of Bitrix24."},
		"portal blocked": {simulator.Fault{Method: "batch", Status: http.StatusServiceUnavailable, Code: "OVERLOAD_LIMIT",
			Description: "REST API is blocked due to overload.", Times: 20}, http.StatusServiceUnavailable, "OVERLOAD_LIMIT"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newInstalledEnv(t, func(e *testEnv) { e.bulk = &fakeQueue{} })
			admin := e.openApp(simulator.SeedAdmin, "en")
			require.Equal(t, http.StatusOK, admin.status, admin.body)
			e.portal.InjectFault(c.fault)
			res := e.press(admin, "#bulk-form", "count", nil)
			assert.Equal(t, c.status, res.status, res.body)
			assert.Contains(t, text(res, "#banner .alert-title"), "The bulk run could not go ahead")
			assert.Contains(t, res.doc.Find("#banner").Text(), c.text)
			assert.NotContains(t, text(res, "#banner .alert-danger"), "Something went wrong")
		})
	}
}
