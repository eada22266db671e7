package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePHPQuery(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  string // JSON of the parsed tree
	}{
		{"plain", "id=5&auth=x", `{"id":"5","auth":"x"}`},
		{"nested", "fields%5BCONTACT_ID%5D=7&fields[SORT]=10", `{"fields":{"CONTACT_ID":"7","SORT":"10"}}`},
		{"append", "filter[@ID][]=1&filter[@ID][]=3", `{"filter":{"@ID":["1","3"]}}`},
		{"indexed list", "items[0][CONTACT_ID]=1&items[1][CONTACT_ID]=2", `{"items":[{"CONTACT_ID":"1"},{"CONTACT_ID":"2"}]}`},
		{"keyed cmd", "cmd[a]=profile&cmd[b]=crm.lead.get%3Fid%3D1", `{"cmd":{"a":"profile","b":"crm.lead.get?id=1"}}`},
		{"last wins", "id=1&id=2", `{"id":"2"}`},
		{"plus is space", "q=a+b", `{"q":"a b"}`},
		{"bad escape kept", "q=%zz", `{"q":"%zz"}`},
		{"empty base dropped", "[x]=1&y=2", `{"y":"2"}`},
		{"unclosed bracket is a plain key", "a[b=1", `{"a[b":"1"}`},
		{"empty", "", `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newOmap()
			parsePHPQuery(tt.query, m)
			got, err := marshalJSON(m)
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, string(got))
		})
	}
}

func TestPHPInt(t *testing.T) {
	tests := []struct {
		in   any
		want int
	}{
		{"12", 12}, {" 12abc", 12}, {"abc", 0}, {"-3", -3}, {json.Number("7"), 7},
		{json.Number("7.9"), 7}, {true, 1}, {nil, 0}, {"99999999999999999999", 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, phpInt(tt.in), "%#v", tt.in)
	}
}

func TestJSONBodyKeepsOrder(t *testing.T) {
	req, err := http.NewRequest(http.MethodPost, "/rest/batch?auth=q", strings.NewReader(`{"cmd":{"z":"profile","a":"app.info"},"auth":"b"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	m, err := parseRequestParams(req)
	require.NoError(t, err)
	assert.Equal(t, "b", m.vals["auth"], "body wins over query")
	cmd := m.vals["cmd"].(*omap)
	assert.Equal(t, []string{"z", "a"}, cmd.keys)

	deep := `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	for _, bad := range []string{`[1,2]`, `{"a":`, `"x"`, deep} {
		req, _ := http.NewRequest(http.MethodPost, "/rest/x", strings.NewReader(bad))
		req.Header.Set("Content-Type", "application/json")
		_, err := parseRequestParams(req)
		assert.Error(t, err, bad)
	}
}

func FuzzParsePHPQuery(f *testing.F) {
	for _, seed := range []string{"a=1", "a[b][c][]=1&a[b][c][]=2", "cmd[x]=batch%3Fcmd%5By%5D%3Dprofile", "[=&]=[", "a[]][[=1", "%00=%ff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, q string) {
		m := newOmap()
		parsePHPQuery(q, m)
		b, err := marshalJSON(m)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if !json.Valid(b) {
			t.Fatalf("invalid JSON %s", b)
		}
		_ = flatten(m)
	})
}

func FuzzJSONBody(f *testing.F) {
	for _, seed := range []string{`{"id":1}`, `{"cmd":{"a":"profile"},"halt":1}`, `{"items":[{"CONTACT_ID":1}]}`, `{"a":[[[]]]}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := http.NewRequest(http.MethodPost, "/rest/x", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Skip()
		}
		req.Header.Set("Content-Type", "application/json")
		m, err := parseRequestParams(req)
		if err != nil {
			return
		}
		if _, err := marshalJSON(m); err != nil {
			t.Fatalf("marshal: %v", err)
		}
		_ = flatten(m)
	})
}

func TestSubstituteRefs(t *testing.T) {
	results := map[string]any{
		"user": map[string]any{"ID": "5", "UF_DEPARTMENT": []any{json.Number("1"), json.Number("7")}},
		"list": []any{map[string]any{"ID": "9"}},
	}
	m := newOmap()
	parsePHPQuery("a=$result[user][UF_DEPARTMENT][1]&b=x-$result[list][0][ID]-y&c=$result[user][UF_DEPARTMENT]&d=$result[nope][ID]&e=$result[user][ID][0]", m)
	substituteRefs(m, results)
	got, err := marshalJSON(m)
	require.NoError(t, err)
	// Recorded (CRestUtil::processBatchElement): an unresolved whole-value
	// reference becomes the deepest part that resolved: every result so far
	// for an unknown key, the string for a path into a scalar.
	assert.JSONEq(t, `{"a":"7","b":"x-9-y","c":["1","7"],"d":{"user":{"ID":"5","UF_DEPARTMENT":["1","7"]},"list":[{"ID":"9"}]},"e":"5"}`, string(got))

	m = newOmap()
	parsePHPQuery("a=$result[list][5][ID]&b=x-$result[list][5][ID]-y&c=x-$result[nope]", m)
	substituteRefs(m, results)
	got, err = marshalJSON(m)
	require.NoError(t, err)
	assert.JSONEq(t, `{"a":[{"ID":"9"}],"b":"x-$result[list][5][ID]-y","c":"x-$result[nope]"}`, string(got),
		"item 5 of a 1-item list yields the list; inside a longer string an unresolved reference stays as written")
}
