package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestItemGetMatchesTheDocsExample: the simulator's crm.item.get answer for
// a lead has the docs example's keys, and every value that is set on both
// sides has the same JSON type.
func TestItemGetMatchesTheDocsExample(t *testing.T) {
	f := mustRecording(t, "rest_crm_item_get_lead")
	p := newTestPortal(t, newTestSim(t))
	tok := mustInstall(t, p)
	p.AddContact(Contact{ID: 501, Name: "Ada"})
	p.AddLead(Lead{ID: 500, Title: "Docs", LastName: "Lovelace"})
	require.NoError(t, p.LinkContact(500, 501, 10, true))

	r := callJSON(t, p, "crm.item.get", tok.AccessToken, map[string]any{"entityTypeId": 1, "id": 500})
	require.Equal(t, f.Status, r.Status, string(r.Raw))
	want, got := itemOf(t, part(t, f.Body, "result")), itemOf(t, part(t, r.Raw, "result"))
	assert.Equal(t, sortedKeys(want), sortedKeys(got), "source %s", f.Source)
	for k, w := range want {
		g := got[k]
		if w == nil || g == nil || isEmptyList(w) || isEmptyList(g) {
			continue
		}
		assert.IsType(t, w, g, "item.%s", k)
	}
	assert.Equal(t, []any{json.Number("501")}, got["contactIds"])
	assert.Equal(t, "Docs", got["title"])
}

// TestItemGetErrors follows crm-item-get.md's error table.
func TestItemGetErrors(t *testing.T) {
	p := newTestPortal(t, newTestSim(t))
	tok := mustInstall(t, p)
	p.AddLead(Lead{ID: 600, Title: "Empty"})
	p.AddUser(User{ID: 9, Name: "No", LastName: "Rights"})

	r := callJSON(t, p, "crm.item.get", tok.AccessToken, map[string]any{"entityTypeId": 1, "id": 600})
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, []any{}, itemOf(t, part(t, r.Raw, "result"))["contactIds"], "no links: an empty array, never absent")

	for _, tc := range []struct {
		name   string
		params map[string]any
		token  string
		code   string
	}{
		{"unknown lead", map[string]any{"entityTypeId": 1, "id": 999999}, tok.AccessToken, "NOT_FOUND"},
		{"unknown type", map[string]any{"entityTypeId": 9999, "id": 600}, tok.AccessToken, "NOT_FOUND"},
		{"no read right", map[string]any{"entityTypeId": 1, "id": 600}, p.IssueTokens(9).AccessToken, "ACCESS_DENIED"},
	} {
		r := callJSON(t, p, "crm.item.get", tc.token, tc.params)
		assert.Equal(t, http.StatusBadRequest, r.Status, tc.name)
		assert.Equal(t, tc.code, r.errCode(), tc.name)
	}
}

// TestBatchNamesTheLinkedContacts: the tab's reference, item.contactIds
// taken whole as the "@ID" filter of crm.contact.list, selects exactly the
// linked contacts, and nothing when none is linked.
func TestBatchNamesTheLinkedContacts(t *testing.T) {
	p := newTestPortal(t, newTestSim(t))
	tok := mustInstall(t, p)
	for _, id := range []int{701, 702, 703} {
		p.AddContact(Contact{ID: id, Name: "C"})
	}
	p.AddLead(Lead{ID: 700, Title: "Two"})
	p.AddLead(Lead{ID: 710, Title: "None"})
	require.NoError(t, p.LinkContact(700, 703, 10, true))
	require.NoError(t, p.LinkContact(700, 701, 20, false))

	for lead, want := range map[int][]string{700: {"701", "703"}, 710: nil} {
		r := callJSON(t, p, "batch", tok.AccessToken, map[string]any{"halt": 0, "cmd": map[string]any{
			"lead":  "crm.item.get?entityTypeId=1&id=" + strconv.Itoa(lead),
			"names": "crm.contact.list?filter[@ID]=$result[lead][item][contactIds]&select[0]=ID&select[1]=NAME",
		}})
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		var out struct {
			Result struct {
				Result struct {
					Names []struct{ ID string } `json:"names"`
				} `json:"result"`
				Errors json.RawMessage `json:"result_error"`
			} `json:"result"`
		}
		require.NoError(t, json.Unmarshal(r.Raw, &out))
		assert.JSONEq(t, "[]", string(out.Result.Errors), "lead %d", lead)
		var ids []string
		for _, n := range out.Result.Result.Names {
			ids = append(ids, n.ID)
		}
		assert.Equal(t, want, ids, "lead %d", lead)
	}
}

func itemOf(t *testing.T, result []byte) map[string]any {
	t.Helper()
	var v struct{ Item map[string]any }
	dec := json.NewDecoder(bytes.NewReader(result))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&v))
	require.NotNil(t, v.Item, "result has an item")
	return v.Item
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}
