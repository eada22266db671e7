package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/simulator"
	"github.com/b24apps/leadcontacts/store"
)

// historyView is one row of the admins' history as text.
type historyView struct {
	Lead, Summary, User, Badge, When, Datetime string
	Contacts                                   []string
}

// readHistory reads the admins' history, one view per entry.
func readHistory(p page) []historyView {
	var out []historyView
	p.doc.Find("#history > li").Each(func(_ int, li *goquery.Selection) {
		clean := func(s string) string { return strings.Join(strings.Fields(s), " ") }
		v := historyView{
			Lead: clean(li.Find(".history-lead").Text()), Summary: clean(li.Find(".history-what").Text()),
			User: clean(li.Find(".history-user").Text()), Badge: clean(li.Find(".badge").Text()),
			When: clean(li.Find("time").Text()), Datetime: li.Find("time").AttrOr("datetime", ""),
		}
		li.Find(".names li").Each(func(_ int, n *goquery.Selection) { v.Contacts = append(v.Contacts, clean(n.Text())) })
		out = append(out, v)
	})
	return out
}

// userGetCalls counts the user.get sub-calls the portal answered since mark.
func userGetCalls(p *simulator.Portal, mark int) int {
	n := 0
	for _, c := range p.Calls()[mark:] {
		if c.Method == "user.get" {
			n++
		}
	}
	return n
}

// TestHistoryReadsAsWords: what users did, as an administrator reads it:
// the lead's title, the user's and the contacts' names as the tab showed
// them, and each outcome in its own words (unlinked, refused with the
// reason, undone), with the Bitrix24 code where there is one.
func TestHistoryReadsAsWords(t *testing.T) {
	e := newInstalledEnv(t)
	lead := e.leadWithContacts(3)
	tab := e.openTab(simulator.SeedSales, lead, "en")
	done := e.clickRemove(tab)
	require.Equal(t, http.StatusOK, done.status, done.body)
	undone := e.submit(done, "#undo-form")
	require.Equal(t, http.StatusOK, undone.status, undone.body)
	refused := e.clickRemove(e.openTab(simulator.SeedViewer, lead, "en"))
	require.Equal(t, http.StatusForbidden, refused.status, refused.body)

	stored := e.history()
	require.Len(t, stored, 3)
	assert.Equal(t, "Bob Sales", stored[2].UserName, "the remover's name is kept with the entry")
	assert.Equal(t, "Website inquiry – Groß GmbH", stored[2].LeadTitle)
	assert.Equal(t, []string{"Jürgen Groß", "Анна Сергеевна Смирнова", "Siobhán O'Connor"}, stored[2].ContactNames)

	mark := len(e.portal.Calls())
	admin := e.openApp(simulator.SeedAdmin, "en")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	n, methods := batchRequests(e.portal, mark)
	assert.Equal(t, 1, n, "still one request: %v", methods)
	assert.Zero(t, userGetCalls(e.portal, mark), "every entry has its names: no user.get")

	rows := readHistory(admin)
	require.Len(t, rows, 3)
	// Newest first: Carol's refused attempt, the undo, the removal.
	assert.Equal(t, historyView{Lead: "Website inquiry – Groß GmbH", Summary: "Nothing was unlinked: the user has no permission in Bitrix24",
		User: "Carol Viewer", Badge: "failed · ACCESS_DENIED", When: rows[0].When, Datetime: rows[0].Datetime}, rows[0],
		"a refused attempt says why and lists no contacts as if they had been unlinked")
	assert.Equal(t, "Undo: 3 contacts linked again", rows[1].Summary)
	assert.Equal(t, "Bob Sales", rows[1].User)
	assert.Equal(t, "done", rows[1].Badge)
	assert.Equal(t, "Unlinked 3 contacts", rows[2].Summary)
	assert.Equal(t, []string{"Jürgen Groß", "Анна Сергеевна Смирнова", "Siobhán O'Connor"}, rows[2].Contacts)
	assert.Equal(t, "Bob Sales", rows[2].User)
	assert.Zero(t, admin.doc.Find("#names-hint").Length(), "nothing to explain")
}

// addOldEntries writes entries as a version that kept no names did.
func addOldEntries(t *testing.T, e *testEnv, entries ...store.HistoryEntry) {
	t.Helper()
	for _, h := range entries {
		h.MemberID = e.portal.MemberID()
		require.NoError(t, e.st.AddHistory(context.Background(), &h))
	}
}

// TestHistoryNamesOlderEntriesWithUserGet: entries without names (written
// before names were kept) get their users' names from user.get, asked in
// the page's one batch with user_brief; the lead and the contacts, which
// user_brief cannot read, are named by number. The re-bind page does the
// same.
func TestHistoryNamesOlderEntriesWithUserGet(t *testing.T) {
	e := newInstalledEnv(t)
	addOldEntries(t, e,
		store.HistoryEntry{LeadID: 5, UserID: simulator.SeedViewer, Action: store.ActionRemove, Outcome: store.OutcomeOK, ContactIDs: []int64{7, 12}},
		store.HistoryEntry{LeadID: 6, UserID: 99, Action: store.ActionRemove, Outcome: store.OutcomeOK},
		store.HistoryEntry{LeadID: 5, UserID: simulator.SeedViewer, Action: store.ActionUndo, Outcome: store.OutcomeRefused, ErrorCode: "LEAD_CHANGED", ContactIDs: []int64{7}},
	)
	mark := len(e.portal.Calls())
	admin := e.openApp(simulator.SeedAdmin, "en")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	n, _ := batchRequests(e.portal, mark)
	assert.Equal(t, 1, n, "the names come in the page's one batch")
	assert.Equal(t, 1, userGetCalls(e.portal, mark))
	for _, c := range e.portal.Calls()[mark:] {
		if c.Method == "user.get" {
			assert.ElementsMatch(t, []string{"3", "99"}, []string{c.Params.Get("FILTER[ID][0]"), c.Params.Get("FILTER[ID][1]")}, "each unnamed user once")
		}
	}

	rows := readHistory(admin)
	require.Len(t, rows, 3)
	assert.Equal(t, "Undo refused: contacts had been linked to the lead since", rows[0].Summary)
	assert.Equal(t, "refused · LEAD_CHANGED", rows[0].Badge)
	assert.Equal(t, "Carol Viewer", rows[0].User, "named by user.get")
	assert.Equal(t, "Lead #6", rows[1].Lead)
	assert.Equal(t, "Nothing to unlink: the lead had no contacts", rows[1].Summary)
	assert.Equal(t, "user #99", rows[1].User, "a user Bitrix24 does not know keeps the number")
	assert.Equal(t, "Lead #5", rows[2].Lead)
	assert.Equal(t, "Unlinked 2 contacts", rows[2].Summary)
	assert.Equal(t, []string{"#7", "#12"}, rows[2].Contacts)
	assert.Equal(t, "ltr", admin.doc.Find("#history .names bdi").First().AttrOr("dir", ""), "a number reads left to right in every language")
	assert.Zero(t, admin.doc.Find("#names-hint").Length(), "the scope is there")

	// The re-bind answers with the same page: the same names.
	rebound := e.submit(admin, "#rebind-form")
	require.Equal(t, http.StatusOK, rebound.status, rebound.body)
	again := readHistory(rebound)
	require.Len(t, again, 3)
	assert.Equal(t, "Carol Viewer", again[0].User)
}

// TestHistoryWithoutTheUserScope: an app granted no user scope does not
// ask user.get, lists the users of older entries by number, and tells the
// admin which permission would name them.
func TestHistoryWithoutTheUserScope(t *testing.T) {
	e := newInstalledEnv(t, withSim(func(o *simulator.Options) { o.App.Scope = []string{"crm", "placement"} }))
	addOldEntries(t, e,
		store.HistoryEntry{LeadID: 5, UserID: simulator.SeedViewer, Action: store.ActionRemove, Outcome: store.OutcomeOK, ContactIDs: []int64{7}},
		store.HistoryEntry{LeadID: 5, UserID: simulator.SeedViewer, Action: store.ActionUndo, Outcome: store.OutcomeError, ErrorCode: "QUERY_LIMIT_EXCEEDED", ContactIDs: []int64{7}},
		store.HistoryEntry{LeadID: 5, UserID: simulator.SeedViewer, Action: store.ActionRemove, Outcome: store.OutcomeUncounted},
	)
	mark := len(e.portal.Calls())
	admin := e.openApp(simulator.SeedAdmin, "ru")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	assert.Zero(t, userGetCalls(e.portal, mark), "not asked for what the app may not read")
	assert.Zero(t, admin.doc.Find(".alert-danger").Length(), "user_brief is optional: no missing-permission alarm")
	rows := readHistory(admin)
	require.Len(t, rows, 3)
	assert.Equal(t, "Отвязаны все контакты; Bitrix24 не сообщил, сколько", rows[0].Summary)
	assert.Equal(t, "Отмена не удалась, ничего не восстановлено: Bitrix24 был перегружен", rows[1].Summary)
	assert.Equal(t, "ошибка · QUERY_LIMIT_EXCEEDED", rows[1].Badge)
	assert.Empty(t, rows[1].Contacts, "a failed undo restored nobody")
	assert.Equal(t, "пользователь №3", rows[2].User)
	assert.Equal(t, "Отвязан 1 контакт", rows[2].Summary)
	assert.Contains(t, text(admin, "#names-hint"), "«user_brief»")
}

// TestHistoryTimesInTheAdminsZone: times are shown in the zone the
// admin's Bitrix24 profile names (summer time included), else at the
// offset the profile reports, else in UTC; the zone is always named, and
// the install time uses the same zone.
func TestHistoryTimesInTheAdminsZone(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	tests := []struct {
		name   string
		admin  simulator.User
		zone   string
		loc    *time.Location
		offset string
	}{
		{"named zone", simulator.User{TimeZone: "Europe/Berlin"}, "Europe/Berlin", berlin, ""},
		{"automatic, the browser's offset", simulator.User{TimeZoneOffset: 5*3600 + 1800}, "UTC+05:30", time.FixedZone("", 5*3600+1800), "+05:30"},
		{"unknown name, its offset", simulator.User{TimeZone: "Mars/Olympus_Mons", TimeZoneOffset: -3 * 3600}, "UTC-03:00", time.FixedZone("", -3*3600), "-03:00"},
		{"nothing known", simulator.User{}, "UTC", time.UTC, "Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newInstalledEnv(t)
			u := tt.admin
			u.ID, u.Name, u.LastName, u.Admin, u.CanRead, u.CanEdit = simulator.SeedAdmin, "Alice", "Admin", true, true, true
			e.portal.AddUser(u)
			// One entry in winter and one in summer: a named zone knows
			// both offsets.
			now := time.Now().UTC().Truncate(time.Minute)
			winter := time.Date(now.Year()-1, 12, 4, 13, 46, 0, 0, time.UTC)
			summer := time.Date(now.Year()-1, 7, 1, 12, 0, 0, 0, time.UTC)
			addOldEntries(t, e,
				store.HistoryEntry{LeadID: 1, UserID: 2, UserName: "Bob Sales", Action: store.ActionRemove, Outcome: store.OutcomeOK, At: summer},
				store.HistoryEntry{LeadID: 1, UserID: 2, UserName: "Bob Sales", Action: store.ActionRemove, Outcome: store.OutcomeOK, At: winter},
			)
			admin := e.openApp(simulator.SeedAdmin, "en")
			require.Equal(t, http.StatusOK, admin.status, admin.body)
			assert.Equal(t, "Times are in your Bitrix24 time zone: "+tt.zone, text(admin, "#history-zone"))
			rows := readHistory(admin)
			require.Len(t, rows, 2)
			for i, at := range []time.Time{winter, summer} {
				assert.Equal(t, at.In(tt.loc).Format("2006-01-02 15:04"), rows[i].When)
				assert.Equal(t, at.In(tt.loc).Format(time.RFC3339), rows[i].Datetime)
				got, err := time.Parse(time.RFC3339, rows[i].Datetime)
				require.NoError(t, err)
				assert.True(t, got.Equal(at), "the datetime attribute is the same instant")
				if tt.offset != "" {
					assert.True(t, strings.HasSuffix(rows[i].Datetime, tt.offset), rows[i].Datetime)
				}
			}
			if tt.loc == berlin {
				assert.True(t, strings.HasSuffix(rows[0].When, " 14:46"), "13:46 UTC is 14:46 in Berlin in December: %s", rows[0].When)
				assert.True(t, strings.HasSuffix(rows[0].Datetime, "+01:00") && strings.HasSuffix(rows[1].Datetime, "+02:00"), "winter and summer time")
			}
			p := e.mustPortal(t)
			assert.Equal(t, p.InstalledAt.In(tt.loc).Format("2006-01-02 15:04")+" "+tt.zone, text(admin, "#installed-at"))
		})
	}
}

// TestAdminPageBidi: in Arabic every number, id, code, date and zone on
// the admins' page sits in an element that reads left to right, so the
// right-to-left page cannot reorder it ("(#3 ,#2 ,#1)"); names get their
// own isolation with the direction of their text.
func TestAdminPageBidi(t *testing.T) {
	e := newInstalledEnv(t)
	addOldEntries(t, e,
		store.HistoryEntry{LeadID: 5, UserID: 99, Action: store.ActionRemove, Outcome: store.OutcomeError, ErrorCode: "ACCESS_DENIED"},
		store.HistoryEntry{LeadID: 4, UserID: 2, UserName: "Bob Sales", LeadTitle: "Big conference", Action: store.ActionRemove, Outcome: store.OutcomeOK,
			ContactIDs: []int64{1, 2, 3}, ContactNames: []string{"Jürgen Groß", "", "فاطمة"}},
	)
	admin := e.openApp(simulator.SeedAdmin, "ar")
	require.Equal(t, http.StatusOK, admin.status, admin.body)
	assert.Equal(t, "rtl", admin.doc.Find("html").AttrOr("dir", ""))
	ltr := func(sel string) {
		t.Helper()
		s := admin.doc.Find(sel)
		require.NotZero(t, s.Length(), sel)
		s.Each(func(_ int, el *goquery.Selection) {
			b := el.Closest("bdi")
			assert.Equal(t, "ltr", b.AttrOr("dir", ""), "%s %q must sit in <bdi dir=ltr>", sel, el.Text())
		})
	}
	ltr("#history time")
	ltr("#installed-at time")
	admin.doc.Find("#history .badge bdi, #history-zone bdi, #installed-at bdi").Each(func(_ int, b *goquery.Selection) {
		assert.Equal(t, "ltr", b.AttrOr("dir", ""), "%q", b.Text())
	})
	var ids, names []string
	admin.doc.Find("#history .names bdi").Each(func(_ int, b *goquery.Selection) {
		if b.AttrOr("dir", "") == "ltr" {
			ids = append(ids, b.Text())
		} else {
			names = append(names, b.Text())
		}
	})
	assert.Equal(t, []string{"#2"}, ids, "an unnamed contact's number reads left to right")
	assert.Equal(t, []string{"Jürgen Groß", "فاطمة"}, names, "names keep the direction of their own text")
	_, hasDir := admin.doc.Find("#history .history-user bdi").First().Attr("dir")
	assert.False(t, hasDir, "a user's name is isolated with its own direction")
	assert.Equal(t, "فُصلت 3 جهات اتصال", text(admin, "#history > li:nth-child(1) .history-what"))
}

// TestHistoryOfARemovalWhoseAnswerWasLost: a removal known only from the
// read-back (the answer was lost, no contact is left) is recorded as done
// with the count unknown, never as "nothing to unlink".
func TestHistoryOfARemovalWhoseAnswerWasLost(t *testing.T) {
	e, lead, tab := newTestTab(t, 3, withTimeout(1200*time.Millisecond))
	e.portal.InjectFault(simulator.Fault{Method: "batch", AfterRun: true, Status: 500})
	res := e.clickRemove(tab)
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.Empty(t, e.portal.LeadContacts(lead))
	stored := e.history()
	require.Len(t, stored, 1)
	assert.Equal(t, store.OutcomeUncounted, stored[0].Outcome)
	rows := readHistory(e.openApp(simulator.SeedAdmin, "en"))
	require.Len(t, rows, 1)
	assert.Equal(t, "Unlinked all contacts; Bitrix24 did not say how many", rows[0].Summary)
	assert.Equal(t, "done", rows[0].Badge)
}
