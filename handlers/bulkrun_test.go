package handlers_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// withPortalBudget gives the app the production per-portal limiter.
func withPortalBudget() envOption {
	return func(e *testEnv) {
		prev := e.restOptions
		e.restOptions = func(o *bitrix24.Options) {
			if prev != nil {
				prev(o)
			}
			o.PortalRate, o.PortalBurst = bitrix24.DefaultPortalRate, bitrix24.DefaultPortalBurst
		}
	}
}

// newBulkRun stores an admin session (the seeded admin's fresh tokens, as
// the admins' page would) and a queued run over filter, matching matched.
func (e *testEnv) newBulkRun(filter store.BulkFilter, matched int64) *store.BulkRun {
	e.t.Helper()
	tok := e.portal.IssueTokens(simulator.SeedAdmin)
	e.remember(tok.AccessToken, tok.RefreshToken)
	sess := &store.Session{ID: "bulk-" + strconv.FormatInt(time.Now().UnixNano(), 36), MemberID: e.portal.MemberID(),
		UserID: simulator.SeedAdmin, UserName: "Alice Admin", Lang: "en",
		AccessToken: secret.New(tok.AccessToken), RefreshToken: secret.New(tok.RefreshToken),
		ExpiresAt: time.Now().Add(48 * time.Hour)}
	require.NoError(e.t, e.st.CreateSession(context.Background(), sess))
	r := &store.BulkRun{MemberID: e.portal.MemberID(), UserID: simulator.SeedAdmin, UserName: "Alice Admin", Lang: "en",
		SessionID: sess.ID, Filter: filter, Matched: matched}
	require.NoError(e.t, e.st.CreateBulkRun(context.Background(), r))
	return r
}

func (e *testEnv) bulkRun(id int64) *store.BulkRun {
	e.t.Helper()
	r, err := e.st.BulkRun(context.Background(), id)
	require.NoError(e.t, err)
	return r
}

// leadDeletes counts the successful crm.lead.contact.items.delete
// sub-calls per lead since call mark.
func leadDeletes(p *simulator.Portal, mark int) map[string]int {
	out := map[string]int{}
	for _, c := range p.Calls()[mark:] {
		if c.Method == "crm.lead.contact.items.delete" && c.HTTPStatus == http.StatusOK {
			out[c.Params.Get("id")]++
		}
	}
	return out
}

// requestsSince is the HTTP requests the portal saw since mark (a batch
// is one), and whether any was refused for the rate.
func requestsSince(p *simulator.Portal, mark int) (n int, limited bool, first, last time.Time) {
	for _, c := range p.Calls()[mark:] {
		if c.Batch {
			continue
		}
		if n == 0 {
			first = c.Time
		}
		n, last = n+1, c.Time
		limited = limited || c.Error == "QUERY_LIMIT_EXCEEDED"
	}
	return n, limited, first, last
}

// A run over 2,000 leads, as the seeded admin, within the portal's budget:
// every link is gone, each removed exactly once, each lead with contacts
// recorded once in the history; no request was refused for the rate.
func TestBulkRunRemovesEveryLinkOnce(t *testing.T) {
	e := newInstalledEnv(t, withPortalBudget())
	e.portal.SeedLeads(simulator.BulkOptions{Leads: 2000, Seed: 14})
	withLinks, links := 0, 0
	for id := 1; id <= 2100; id++ {
		if n := len(e.portal.LeadContacts(id)); n > 0 {
			withLinks, links = withLinks+1, links+n
		}
	}
	mark := len(e.portal.Calls())
	run := e.newBulkRun(store.BulkFilter{}, 2000)
	start := time.Now()
	require.NoError(t, e.h.WorkBulkRun(context.Background(), run.ID))
	took := time.Since(start)

	got := e.bulkRun(run.ID)
	assert.Equal(t, store.RunDone, got.State)
	assert.EqualValues(t, links, got.Removed)
	assert.Zero(t, got.Refused)
	for id := 1; id <= 2100; id++ {
		require.Empty(t, e.portal.LeadContacts(id), "lead %d", id)
	}
	deletes := leadDeletes(e.portal, mark)
	assert.Len(t, deletes, withLinks)
	for k, n := range deletes {
		require.Equal(t, 1, n, "lead %s unlinked once", k)
	}
	n, limited, first, last := requestsSince(e.portal, mark)
	assert.False(t, limited, "the portal never answered QUERY_LIMIT_EXCEEDED")
	floor := time.Duration(max(n-bitrix24.DefaultPortalBurst, 0)) * time.Second / 2
	assert.GreaterOrEqual(t, last.Sub(first)+time.Second, floor, "past the burst, 2 requests per second at most")
	h := e.history()
	assert.Len(t, h, min(withLinks, 100))
	assert.Equal(t, store.ViaBulk, h[0].Via)
	assert.Equal(t, run.ID, h[0].RunID)
	t.Logf("2000 leads (%d with links, %d links): %d requests in %v (%.1f links per request; floor at 2/s past the burst %v)",
		withLinks, links, n, took.Round(time.Millisecond), float64(links)/float64(n), floor)
}

// A refusal of one lead (the admin may not edit it) is recorded with its
// code and the run goes on; it is not retried.
func TestBulkRunRecordsARefusal(t *testing.T) {
	e := newInstalledEnv(t)
	e.portal.SeedLeads(simulator.BulkOptions{Leads: 120, Seed: 3, WithContacts: 1})
	e.portal.InjectFault(simulator.Fault{Method: "crm.lead.contact.items.delete", Status: 400, Code: "ACCESS_DENIED", Description: "Access denied"})
	mark := len(e.portal.Calls())
	run := e.newBulkRun(store.BulkFilter{}, 130)
	require.NoError(t, e.h.WorkBulkRun(context.Background(), run.ID))
	got := e.bulkRun(run.ID)
	assert.Equal(t, store.RunDone, got.State)
	assert.EqualValues(t, 1, got.Refused)
	refused, err := e.st.BulkLeads(context.Background(), run.ID, store.LeadRefused, 10)
	require.NoError(t, err)
	require.Len(t, refused, 1)
	assert.Equal(t, "ACCESS_DENIED", refused[0].ErrorCode)
	lead := refused[0].LeadID
	assert.NotEmpty(t, e.portal.LeadContacts(int(lead)), "the refused lead keeps its contacts")
	tries, denied := 0, 0
	for _, c := range e.portal.Calls()[mark:] {
		if c.Method == "crm.lead.contact.items.delete" && c.Params.Get("id") == strconv.FormatInt(lead, 10) {
			tries++
			if c.Error == "ACCESS_DENIED" {
				denied++
			}
		}
	}
	assert.Equal(t, 1, denied, "the refusal is never retried")
	assert.Equal(t, 1, tries, "the refused lead is not tried again")
	assert.Empty(t, refused[0].Links, "nothing of it was unlinked")
	var found bool
	all, err := e.st.History(context.Background(), e.portal.MemberID(), 1000)
	require.NoError(t, err)
	for _, h := range all {
		if h.LeadID == lead {
			found = true
			assert.Equal(t, store.OutcomeError, h.Outcome)
			assert.Equal(t, "ACCESS_DENIED", h.ErrorCode)
		}
	}
	assert.True(t, found, "the refusal is in the history")
}

// A batch whose answer is lost (the portal ran it, the connection broke)
// is read back, not sent again: no link is deleted twice, and every lead
// is settled once.
func TestBulkRunLostAnswerIsReadBack(t *testing.T) {
	var e *testEnv
	var armed atomic.Bool
	batches := 0
	e = newInstalledEnv(t, func(e2 *testEnv) {
		e2.restOptions = func(o *bitrix24.Options) {
			o.Observe = func(_ context.Context, x bitrix24.Exchange) {
				if x.Method == "batch" && armed.Load() {
					batches++
					if batches == 2 { // after the listing and one delete batch
						e.portal.InjectFault(simulator.Fault{Method: "batch", AfterRun: true, Status: 500})
					}
				}
			}
		}
	})
	e.portal.SeedLeads(simulator.BulkOptions{Leads: 200, Seed: 5, WithContacts: 1})
	mark := len(e.portal.Calls())
	run := e.newBulkRun(store.BulkFilter{}, 210)
	armed.Store(true)
	require.NoError(t, e.h.WorkBulkRun(context.Background(), run.ID))
	got := e.bulkRun(run.ID)
	assert.Equal(t, store.RunDone, got.State)
	for k, n := range leadDeletes(e.portal, mark) {
		require.Equal(t, 1, n, "lead %s unlinked once", k)
	}
	assert.NotEmpty(t, e.portal.CallsTo("crm.lead.contact.items.get"), "the lost batch's leads were read back")
	seen := map[int64]int{}
	for _, h := range e.history() {
		seen[h.LeadID]++
	}
	for lead, n := range seen {
		assert.Equal(t, 1, n, "lead %d recorded once", lead)
	}
	claimed, err := e.st.BulkLeads(context.Background(), run.ID, store.LeadClaimed, 10)
	require.NoError(t, err)
	assert.Empty(t, claimed, "every lead settled")
}

// Pause takes effect at the next step, resume goes on where the run
// stopped, cancel ends it; nothing is done twice.
func TestBulkRunPauseResumeCancel(t *testing.T) {
	e := newInstalledEnv(t)
	e.portal.SeedLeads(simulator.BulkOptions{Leads: 300, Seed: 9, WithContacts: 1})
	mark := len(e.portal.Calls())
	run := e.newBulkRun(store.BulkFilter{Stages: []string{"NEW", "JUNK"}}, 300)
	ctx := context.Background()
	now := time.Now()
	// Paused before it starts: the job does nothing.
	require.NoError(t, e.st.SetBulkRunState(ctx, run.ID, []string{store.RunQueued}, store.RunPaused, "", "", now))
	require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
	assert.Zero(t, e.bulkRun(run.ID).Leads)

	// Paused during the run, by the Observe hook below: it stops at the
	// next step.
	require.NoError(t, e.st.SetBulkRunState(ctx, run.ID, []string{store.RunPaused}, store.RunRunning, "", "", now))
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		for e.bulkRun(run.ID).Leads == 0 {
			time.Sleep(time.Millisecond)
		}
		assert.NoError(t, e.st.SetBulkRunState(ctx, run.ID, []string{store.RunRunning}, store.RunPaused, "", "", time.Now()))
	}()
	e.portal.InjectFault(simulator.Fault{Method: "batch", Delay: 100 * time.Millisecond, Times: 1000})
	require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
	<-stop
	paused := e.bulkRun(run.ID)
	assert.Equal(t, store.RunPaused, paused.State)
	assert.Less(t, paused.Leads, int64(300))
	e.portal.ClearFaults()

	require.NoError(t, e.st.SetBulkRunState(ctx, run.ID, []string{store.RunPaused}, store.RunRunning, "", "", now))
	require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
	done := e.bulkRun(run.ID)
	assert.Equal(t, store.RunDone, done.State)
	for k, n := range leadDeletes(e.portal, mark) {
		require.Equal(t, 1, n, "lead %s unlinked once", k)
	}
	for id, l := range e.leadsByStage() {
		if l == "NEW" || l == "JUNK" {
			assert.Empty(t, e.portal.LeadContacts(id), "lead %d", id)
		}
	}

	// Cancel: a second run stops before its first step.
	run2 := e.newBulkRun(store.BulkFilter{}, 400)
	require.NoError(t, e.st.SetBulkRunState(ctx, run2.ID, []string{store.RunQueued}, store.RunCancelled, "", "", now))
	require.NoError(t, e.h.WorkBulkRun(ctx, run2.ID))
	assert.Zero(t, e.bulkRun(run2.ID).Leads)
}

// leadsByStage maps the portal's leads to their stage.
func (e *testEnv) leadsByStage() map[int]string {
	out := map[int]string{}
	for id := 1; id <= 400; id++ {
		if l, ok := e.portal.Lead(id); ok {
			out[id] = l.StatusID
		}
	}
	return out
}

// The undo of a run puts every lead's links back, except on a lead that
// has contacts again, which is left alone and recorded so.
func TestBulkRunUndo(t *testing.T) {
	e := newInstalledEnv(t)
	e.portal.SeedLeads(simulator.BulkOptions{Leads: 150, Seed: 7, WithContacts: 1})
	before := map[int][]simulator.LeadContact{}
	for id := 1; id <= 200; id++ {
		if l := e.portal.LeadContacts(id); len(l) > 0 {
			before[id] = l
		}
	}
	run := e.newBulkRun(store.BulkFilter{}, 160)
	ctx := context.Background()
	require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
	require.Equal(t, store.RunDone, e.bulkRun(run.ID).State)

	var changed int
	for id := range before {
		changed = id
		break
	}
	e.portal.AddContact(simulator.Contact{ID: 99001, Name: "New"})
	require.NoError(t, e.portal.LinkContact(changed, 99001, 10, true))

	require.NoError(t, e.st.SetBulkUndo(ctx, run.ID, store.UndoNone, store.UndoRunning, "", time.Now()))
	require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
	got := e.bulkRun(run.ID)
	assert.Equal(t, store.UndoDone, got.UndoState)
	assert.EqualValues(t, len(before)-1, got.Restored)
	assert.EqualValues(t, 1, got.Kept)
	for id, links := range before {
		now := e.portal.LeadContacts(id)
		if id == changed {
			require.Len(t, now, 1, "the changed lead keeps only its new contact")
			continue
		}
		require.Len(t, now, len(links), "lead %d", id)
		for i := range links {
			assert.Equal(t, links[i].ContactID, now[i].ContactID, "lead %d: order kept", id)
			assert.Equal(t, links[i].Primary, now[i].Primary, "lead %d: primary kept", id)
		}
	}
	var refusedUndo int
	all, err := e.st.History(ctx, e.portal.MemberID(), 1000)
	require.NoError(t, err)
	for _, h := range all {
		if h.Action == store.ActionUndo && h.Outcome == store.OutcomeRefused {
			refusedUndo++
			assert.Equal(t, "LEAD_CHANGED", h.ErrorCode)
			assert.EqualValues(t, changed, h.LeadID)
		}
	}
	assert.Equal(t, 1, refusedUndo)
}

// The undo puts back each link's real SORT and primary flag, read just
// before its delete, not the listing's order as 10, 20...: on leads whose
// SORTs are uneven and whose primary contact is not the first.
func TestBulkRunUndoRestoresSort(t *testing.T) {
	e := newInstalledEnv(t)
	sorts := map[int][][2]int{ // lead -> (contact, SORT), the primary first
		701: {{7011, 35}, {7012, 5}, {7013, 990}},
		702: {{7021, 100}, {7022, 110}},
		703: {{7031, 7}},
	}
	before := map[int][]simulator.LeadContact{}
	for lead, links := range sorts {
		e.portal.AddLead(simulator.Lead{ID: lead, Title: "Sorted " + strconv.Itoa(lead), StatusID: "JUNK"})
		for i, l := range links {
			e.portal.AddContact(simulator.Contact{ID: l[0], Name: "C" + strconv.Itoa(l[0])})
			require.NoError(t, e.portal.LinkContact(lead, l[0], l[1], i == 0))
		}
		before[lead] = e.portal.LeadContacts(lead)
	}
	require.Equal(t, 990, before[701][2].Sort, "the portal keeps the SORTs as given")

	run := e.newBulkRun(store.BulkFilter{Stages: []string{"JUNK"}}, 3)
	ctx := context.Background()
	require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
	require.Equal(t, store.RunDone, e.bulkRun(run.ID).State)
	for lead := range sorts {
		require.Empty(t, e.portal.LeadContacts(lead))
	}
	done, err := e.st.BulkLeads(ctx, run.ID, store.LeadDone, 10)
	require.NoError(t, err)
	require.Len(t, done, 3)
	for _, l := range done {
		for _, k := range l.Links {
			i := slices.IndexFunc(before[int(l.LeadID)], func(c simulator.LeadContact) bool { return int64(c.ContactID) == k.ContactID })
			require.GreaterOrEqual(t, i, 0)
			assert.Equal(t, before[int(l.LeadID)][i].Sort, k.Sort, "lead %d contact %d: the run keeps the real SORT", l.LeadID, k.ContactID)
		}
	}

	require.NoError(t, e.st.SetBulkUndo(ctx, run.ID, store.UndoNone, store.UndoRunning, "", time.Now()))
	require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
	assert.Equal(t, store.UndoDone, e.bulkRun(run.ID).UndoState)
	for lead, links := range before {
		assert.Equal(t, links, e.portal.LeadContacts(lead), "lead %d: the same links, SORT and primary contact", lead)
	}
}

// An uninstall from the portal ends the portal's bulk run: a plain one
// cancels it (it has no session left to act with, and would block a run
// after a reinstall), one with CLEAN deletes it with its leads.
func TestUninstallEndsBulkRuns(t *testing.T) {
	for name, clean := range map[string]bool{"keep data": false, "clean": true} {
		t.Run(name, func(t *testing.T) {
			e := newInstalledEnv(t)
			e.portal.SeedLeads(simulator.BulkOptions{Leads: 20, Seed: 4, WithContacts: 1})
			ctx := context.Background()
			run := e.newBulkRun(store.BulkFilter{}, 25)
			require.NoError(t, e.st.SetBulkRunState(ctx, run.ID, []string{store.RunQueued}, store.RunRunning, "", "", time.Now()))
			_, err := e.st.LeaseBulkRun(ctx, run.ID, "w", time.Now(), time.Now().Add(time.Minute))
			require.NoError(t, err)
			require.NoError(t, e.st.ClaimBulkLeads(ctx, run.ID, "w", 5, []store.BulkLead{{LeadID: 5, State: store.LeadClaimed}}))

			require.NoError(t, e.portal.Uninstall(ctx, clean))
			require.False(t, e.mustPortal(t).Active())
			got, err := e.st.BulkRun(ctx, run.ID)
			if clean {
				require.ErrorIs(t, err, store.ErrNotFound, "the run is deleted with the app's data")
				leads, err := e.st.BulkLeads(ctx, run.ID, store.LeadClaimed, 10)
				require.NoError(t, err)
				assert.Empty(t, leads, "and its leads")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, store.RunCancelled, got.State)
			assert.Equal(t, "UNINSTALLED", got.ErrorCode)
			require.NoError(t, e.st.ReleaseBulkRun(ctx, run.ID, "w"))
			mark := len(e.portal.Calls())
			require.NoError(t, e.h.WorkBulkRun(ctx, run.ID))
			n, _, _, _ := requestsSince(e.portal, mark)
			assert.Zero(t, n, "a cancelled run sends nothing")
		})
	}
}

// BenchmarkBulkRun is a run over 2,000 leads (30 % of them with one to
// three contacts, as SeedLeads makes them) against the simulator, with
// the production limiter: links unlinked per portal request (the batch
// limit, 50, is the goal), the requests, and the wall time against the
// budget's floor (requests / 2 per second, ignoring the burst) and
// against what the background share of the burst allows.
func BenchmarkBulkRun(b *testing.B) {
	var links, requests int
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		e := newInstalledEnv(b, withPortalBudget())
		e.portal.SeedLeads(simulator.BulkOptions{Leads: 2000, Seed: 14})
		links = 0
		for id := 1; id <= 2100; id++ {
			links += len(e.portal.LeadContacts(id))
		}
		mark := len(e.portal.Calls())
		run := e.newBulkRun(store.BulkFilter{}, 2000)
		b.StartTimer()
		start := time.Now()
		require.NoError(b, e.h.WorkBulkRun(context.Background(), run.ID))
		took = time.Since(start)
		b.StopTimer()
		require.Equal(b, store.RunDone, e.bulkRun(run.ID).State)
		requests, _, _, _ = requestsSince(e.portal, mark)
		b.StartTimer()
	}
	b.ReportMetric(float64(links)/float64(requests), "links/request")
	b.ReportMetric(float64(requests), "requests")
	b.ReportMetric(took.Seconds(), "s/2000-leads")
	b.ReportMetric(float64(requests)/2, "floor-s")
	share := bitrix24.DefaultPortalBurst - bitrix24.BackgroundReserve(bitrix24.DefaultPortalBurst)
	b.ReportMetric(float64(max(requests-share, 0))/2, "floor-after-burst-s")
}
