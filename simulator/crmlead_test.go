package simulator

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bulkPortal is an installed seeded portal with 2,000 more leads.
func bulkPortal(t *testing.T) (*Portal, string, []Lead) {
	t.Helper()
	_, p, tok := newInstalledPortal(t)
	ids := p.SeedLeads(BulkOptions{Leads: 2000, Seed: 14})
	require.Len(t, ids, 2000)
	var all []Lead
	for id := 1; id <= ids[len(ids)-1]; id++ {
		if l, ok := p.Lead(id); ok {
			all = append(all, l)
		}
	}
	return p, tok.AccessToken, all
}

// listIDs reads the IDs of one crm.lead.list page and its paging fields.
func listIDs(t *testing.T, r restResp) (ids []int, total int, next int, hasNext bool) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	for _, e := range r.Body["result"].([]any) {
		id, err := strconv.Atoi(e.(map[string]any)["ID"].(string))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	total = num(t, r.Body["total"])
	if v, ok := r.Body["next"]; ok {
		next, hasNext = num(t, v), true
	}
	return ids, total, next, hasNext
}

// pageAll walks start=0,50,… and checks each page's next and total.
func pageAll(t *testing.T, p *Portal, token string, filter map[string]any) []int {
	t.Helper()
	var out []int
	start := 0
	for {
		ids, total, next, hasNext := listIDs(t, callJSON(t, p, "crm.lead.list", token,
			map[string]any{"filter": filter, "select": []string{"ID", "STATUS_ID"}, "order": map[string]string{"ID": "ASC"}, "start": start}))
		out = append(out, ids...)
		assert.LessOrEqual(t, len(ids), pageSize)
		if !hasNext {
			assert.Equal(t, total, len(out), "total is every match")
			return out
		}
		assert.Equal(t, start+pageSize, next)
		assert.Len(t, ids, pageSize)
		start = next
	}
}

func want(all []Lead, keep func(Lead) bool) []int {
	var ids []int
	for _, l := range all {
		if keep(l) {
			ids = append(ids, l.ID)
		}
	}
	return ids
}

func TestLeadListFiltersAndPages(t *testing.T) {
	p, token, all := bulkPortal(t)
	from := time.Now().AddDate(0, -3, 0).Truncate(time.Second)
	to := time.Now().AddDate(0, -1, 0).Truncate(time.Second)
	tests := map[string]struct {
		filter map[string]any
		keep   func(Lead) bool
	}{
		"stage":       {map[string]any{"STATUS_ID": "IN_PROCESS"}, func(l Lead) bool { return l.StatusID == "IN_PROCESS" }},
		"source":      {map[string]any{"SOURCE_ID": "CALL"}, func(l Lead) bool { return l.SourceID == "CALL" }},
		"responsible": {map[string]any{"ASSIGNED_BY_ID": SeedSales}, func(l Lead) bool { return l.AssignedByID == SeedSales }},
		"created between": {map[string]any{">=DATE_CREATE": from.Format(time.RFC3339), "<=DATE_CREATE": to.Format(time.RFC3339)},
			func(l Lead) bool { return !l.Created.Before(from) && !l.Created.After(to) }},
		"id list":      {map[string]any{"ID": []int{3, 70, 1999, 4000}}, func(l Lead) bool { return slices.Contains([]int{3, 70, 1999}, l.ID) }},
		"in id list":   {map[string]any{"@ID": []int{5, 6}}, func(l Lead) bool { return l.ID == 5 || l.ID == 6 }},
		"stage by two": {map[string]any{"STATUS_ID": "NEW", "SOURCE_ID": "WEB"}, func(l Lead) bool { return l.StatusID == "NEW" && l.SourceID == "WEB" }},
		"after id":     {map[string]any{">ID": 1900}, func(l Lead) bool { return l.ID > 1900 }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			expect := want(all, tc.keep)
			require.NotEmpty(t, expect, "the seed covers the case")
			assert.Equal(t, expect, pageAll(t, p, token, tc.filter))
		})
	}
}

// TestLeadListKeysetPagingWithoutCount follows huge-data.md: start=-1
// answers up to 50 items, total 0 and no next; ">ID" walks the rest.
func TestLeadListKeysetPagingWithoutCount(t *testing.T) {
	p, token, all := bulkPortal(t)
	var got []int
	last := 0
	for {
		ids, total, _, hasNext := listIDs(t, callJSON(t, p, "crm.lead.list", token, map[string]any{
			"filter": map[string]any{">ID": last, "STATUS_ID": "JUNK"}, "order": map[string]string{"ID": "ASC"}, "select": []string{"ID"}, "start": -1}))
		assert.Zero(t, total, "no count with start=-1")
		assert.False(t, hasNext, "no next with start=-1")
		got = append(got, ids...)
		if len(ids) < pageSize {
			break
		}
		last = ids[len(ids)-1]
	}
	assert.Equal(t, want(all, func(l Lead) bool { return l.StatusID == "JUNK" }), got)
}

func TestLeadListInBatch(t *testing.T) {
	p, token, all := bulkPortal(t)
	r := callJSON(t, p, "batch", token, map[string]any{"halt": 0, "cmd": map[string]string{
		"new":   "crm.lead.list?filter[STATUS_ID]=NEW&order[ID]=ASC&select[]=ID",
		"calls": "crm.lead.list?filter[SOURCE_ID]=CALL&filter[ASSIGNED_BY_ID]=2&start=50",
		"fast":  "crm.lead.list?filter[>ID]=10&start=-1",
	}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	res := r.Body["result"].(map[string]any)
	totals, nexts := res["result_total"].(map[string]any), res["result_next"].(map[string]any)
	assert.Equal(t, len(want(all, func(l Lead) bool { return l.StatusID == "NEW" })), num(t, totals["new"]))
	assert.Equal(t, 50, num(t, nexts["new"]))
	calls := want(all, func(l Lead) bool { return l.SourceID == "CALL" && l.AssignedByID == 2 })
	assert.Equal(t, len(calls), num(t, totals["calls"]))
	page := res["result"].(map[string]any)["calls"].([]any)
	require.Len(t, page, min(50, len(calls)-50))
	assert.Equal(t, strconv.Itoa(calls[50]), page[0].(map[string]any)["ID"])
	assert.Zero(t, num(t, totals["fast"]))
	assert.NotContains(t, nexts, "fast")
}

func TestLeadListNeedsReadRights(t *testing.T) {
	p, _, _ := bulkPortal(t)
	p.AddUser(User{ID: 9, Name: "No", LastName: "Rights"})
	r := callJSON(t, p, "crm.lead.list", p.IssueTokens(9).AccessToken, map[string]any{"filter": map[string]any{"STATUS_ID": "NEW"}})
	assert.Equal(t, http.StatusForbidden, r.Status)
	assert.Equal(t, "Access denied", r.errDesc())
	r = callJSON(t, p, "crm.lead.list", p.IssueTokens(SeedViewer).AccessToken, map[string]any{"filter": map[string]any{"ID": 1}})
	ids, total, _, _ := listIDs(t, r)
	assert.Equal(t, []int{1}, ids)
	assert.Equal(t, 1, total)
}

func TestSeedLeadsIsVariedAndRepeatable(t *testing.T) {
	p, _, all := bulkPortal(t)
	stages, sources, owners, withContacts := map[string]int{}, map[string]int{}, map[int]int{}, 0
	for _, l := range all[4:] { // after the four demo leads
		stages[l.StatusID]++
		sources[l.SourceID]++
		owners[l.AssignedByID]++
		if len(p.LeadContacts(l.ID)) > 0 {
			withContacts++
		}
	}
	assert.Len(t, stages, len(leadStages))
	assert.Len(t, sources, len(leadSources))
	assert.Len(t, owners, 3)
	assert.InDelta(t, 600, withContacts, 120)

	q := newTestPortal(t, newTestSim(t))
	ids := q.SeedLeads(BulkOptions{Leads: 2000, Seed: 14})
	for _, id := range []int{ids[0], ids[999], ids[1999]} {
		a, _ := p.Lead(id)
		b, _ := q.Lead(id)
		assert.Equal(t, a.StatusID+a.SourceID, b.StatusID+b.SourceID, "the same seed, the same leads")
	}
}

func TestLeadUpdate(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	r := callJSON(t, p, "crm.lead.update", tok.AccessToken, map[string]any{"id": SeedLeadNoContacts,
		"fields": map[string]any{"STATUS_ID": "PROCESSED", "TITLE": "Renamed", "SOURCE_ID": "CALL", "ASSIGNED_BY_ID": SeedSales}})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, true, r.Body["result"])
	l, _ := p.Lead(SeedLeadNoContacts)
	assert.Equal(t, Lead{ID: SeedLeadNoContacts, Title: "Renamed", StatusID: "PROCESSED", SourceID: "CALL", AssignedByID: SeedSales, Created: l.Created}, l)

	for _, tc := range []struct {
		name   string
		token  string
		params map[string]any
		status int
		desc   string
	}{
		{"no id", tok.AccessToken, map[string]any{"fields": map[string]any{"TITLE": "x"}}, 400, "ID is not defined or invalid."},
		{"unknown lead", tok.AccessToken, map[string]any{"id": 999999, "fields": map[string]any{"TITLE": "x"}}, 400, "Not found"},
		{"read-only user", p.IssueTokens(SeedViewer).AccessToken, map[string]any{"id": 1, "fields": map[string]any{"TITLE": "x"}}, 403, "Access denied"},
		{"unknown stage", tok.AccessToken, map[string]any{"id": 1, "fields": map[string]any{"STATUS_ID": "NOPE"}}, 400, "Wrong STATUS_ID value."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := callJSON(t, p, "crm.lead.update", tc.token, tc.params)
			assert.Equal(t, tc.status, r.Status, "%s", r.Raw)
			assert.Equal(t, "", r.errCode())
			assert.Equal(t, tc.desc, r.errDesc())
		})
	}
}
