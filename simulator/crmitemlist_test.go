package simulator

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// itemsOf decodes crm.item.list's result: {"items":[...]}.
func itemsOf(t *testing.T, r restResp) []map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	res, ok := r.Body["result"].(map[string]any)
	require.True(t, ok, "result is an object with items: %s", r.Raw)
	var out []map[string]any
	for _, it := range res["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

// TestItemListFiltersPagesAndSelects follows crm-item-list.md: camelCase
// filter keys with prefixes, select (id always), pages of 50 with total
// and next, and start=-1 with neither.
func TestItemListFiltersPagesAndSelects(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	p.AddUser(User{ID: 1, Name: "Admin", Admin: true})
	p.AddContact(Contact{ID: 9001, Name: "Ada"})
	p.AddContact(Contact{ID: 9002, Name: "Bob"})
	for id := 1001; id <= 1120; id++ {
		stage := "NEW"
		if id%2 == 0 {
			stage = "JUNK"
		}
		p.AddLead(Lead{ID: id, Title: "L", StatusID: stage, SourceID: "CALL", AssignedByID: 1,
			Created: time.Date(2026, 1, 1+id%28, 10, 0, 0, 0, time.Local)})
	}
	require.NoError(t, p.LinkContact(1002, 9001, 10, false))
	require.NoError(t, p.LinkContact(1002, 9002, 20, true))

	r := callJSON(t, p, "crm.item.list", tok.AccessToken, map[string]any{"entityTypeId": 1,
		"filter": map[string]any{"stageId": "JUNK", ">id": 1000}, "select": []string{"id", "contactIds"}, "order": map[string]any{"id": "ASC"}})
	items := itemsOf(t, r)
	require.Len(t, items, 50)
	assert.Equal(t, json.Number("60"), r.Body["total"])
	assert.Equal(t, json.Number("50"), r.Body["next"])
	assert.Equal(t, json.Number("1002"), items[0]["id"])
	assert.Equal(t, []any{json.Number("9001"), json.Number("9002")}, items[0]["contactIds"])
	assert.NotContains(t, items[0], "title", "only the selected fields")

	r = callJSON(t, p, "crm.item.list", tok.AccessToken, map[string]any{"entityTypeId": 1, "start": -1,
		"filter": map[string]any{"@stageId": []string{"JUNK"}, ">id": 1100, "<=createdTime": "2026-01-20T23:59:59"},
		"order":  map[string]any{"id": "ASC"}, "select": []string{"id"}})
	items = itemsOf(t, r)
	assert.NotContains(t, r.Body, "next", "start=-1: no paging")
	for _, it := range items {
		var n json.Number = it["id"].(json.Number)
		id, _ := n.Int64()
		assert.Greater(t, id, int64(1100))
		assert.Zero(t, id%2)
	}
	assert.NotEmpty(t, items)

	r = callJSON(t, p, "crm.item.list", tok.AccessToken, map[string]any{"entityTypeId": 1, "filter": map[string]any{"bogus": 1}})
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, "INVALID_ARG_VALUE", r.errCode())
	r = callJSON(t, p, "crm.item.list", tok.AccessToken, map[string]any{"entityTypeId": 7})
	assert.Equal(t, "NOT_FOUND", r.errCode())
}

// TestStatusListLeadStagesAndSources: crm.status.list by ENTITY_ID, in
// SORT order, numbers as strings.
func TestStatusListLeadStagesAndSources(t *testing.T) {
	_, p, tok := newInstalledPortal(t)
	r := callJSON(t, p, "crm.status.list", tok.AccessToken, map[string]any{
		"filter": map[string]any{"ENTITY_ID": "STATUS"}, "order": map[string]any{"SORT": "ASC"}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	list := r.Body["result"].([]any)
	require.Len(t, list, len(leadStages))
	first := list[0].(map[string]any)
	assert.Equal(t, "NEW", first["STATUS_ID"])
	assert.Equal(t, "10", first["SORT"])
	assert.Contains(t, first, "EXTRA")
	r = callJSON(t, p, "crm.status.list", tok.AccessToken, map[string]any{"filter": map[string]any{"ENTITY_ID": "SOURCE"}})
	assert.Len(t, r.Body["result"].([]any), len(leadSources))
}
