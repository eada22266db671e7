package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Paths of the documents, from this package's folder.
const (
	docPath       = "../../docs/metrics.md"
	dashboardPath = "../../docs/grafana-dashboard.json"
)

// documented says whether docs/metrics.md's table covers a family: the
// app's, the pool's and the scrape's own each by a row of their own; the
// client library's runtime and process collectors by their prefix rows.
func documented(doc, name string) bool {
	if strings.Contains(doc, "| `"+name+"` |") {
		return true
	}
	for _, prefix := range []string{"go_", "process_"} {
		if strings.HasPrefix(name, prefix) && !strings.HasPrefix(name, "go_sql_") &&
			strings.Contains(doc, "| `"+prefix+"*` |") {
			return true
		}
	}
	return false
}

// TestEverySeriesIsDocumented keeps docs/metrics.md's table and the
// registry in step: every family the app exports has its row, and every
// row names a family the app exports.
func TestEverySeriesIsDocumented(t *testing.T) {
	b, err := os.ReadFile(docPath)
	require.NoError(t, err)
	doc := string(b)
	fams, _ := families(t, newExercised(t))
	for name := range fams {
		assert.True(t, documented(doc, name), "docs/metrics.md has no row for %s", name)
	}
	rows := regexp.MustCompile("(?m)^\\| `([a-z_:]+)` \\|").FindAllStringSubmatch(doc, -1)
	require.NotEmpty(t, rows)
	for _, r := range rows {
		assert.Contains(t, fams, r[1], "docs/metrics.md documents %s, which the app does not export", r[1])
	}
}

// TestDashboardUsesOnlyExportedSeries parses the Grafana dashboard and
// checks that every series its queries name (panel targets and template
// variables) is one the app registers, and that every series of the app's
// own has a panel.
func TestDashboardUsesOnlyExportedSeries(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	var dash any
	require.NoError(t, json.Unmarshal(b, &dash), "the dashboard is JSON")
	exprs := queries(dash, "")
	require.Greater(t, len(exprs), 20, "the dashboard's queries were found")

	fams, names := families(t, newExercised(t))
	used := map[string]bool{}
	for _, e := range exprs {
		found := seriesIn(e)
		assert.NotEmpty(t, found, "query %q names no series", e)
		for _, n := range found {
			used[n] = true
			assert.True(t, names[n], "query %q names %s, which the app does not export", e, n)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, Namespace+"_") {
			continue
		}
		has := false
		for n := range used {
			if n == name || strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count") == name {
				has = true
			}
		}
		assert.True(t, has, "no panel shows %s", name)
	}
}

// queries collects the PromQL of a dashboard: every "expr", and the
// "query" and "definition" strings of template variables.
func queries(v any, key string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, queries(v[k], k)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, queries(e, key)...)
		}
	case string:
		switch key {
		case "expr", "definition":
			out = append(out, v)
		case "query":
			if strings.Contains(v, "(") { // not the data source's "prometheus"
				out = append(out, v)
			}
		}
	}
	return out
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	labelValues  = regexp.MustCompile(`\blabel_values\(\s*([^,()]+?)\s*,[^)]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords = map[string]bool{"by": true, "without": true, "and": true, "or": true, "unless": true,
		"offset": true, "bool": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true}
)

// seriesIn returns the series names a PromQL expression (or a Grafana
// label_values query) selects: identifiers that are not functions,
// keywords, label names, numbers or Grafana variables.
func seriesIn(expr string) []string {
	e := labelValues.ReplaceAllString(expr, "$1")
	e = promStrings.ReplaceAllString(e, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		id := e[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(e[loc[0]-1:loc[0]], "0123456789.$") {
			continue // 1e3, $job
		}
		if promKeywords[strings.ToLower(id)] || strings.HasPrefix(strings.TrimSpace(e[loc[1]:]), "(") {
			continue // a keyword or a function
		}
		out = append(out, id)
	}
	return out
}

// The extractor finds the series and nothing else in the shapes the
// dashboard uses.
func TestSeriesIn(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{job=~"$job",x="by(y)"}[$__rate_interval])))`: {"a_bucket"},
		`sum(rate(a_total{status=~"5.."}[5m])) / sum(rate(a_total[5m]))`:                                         {"a_total", "a_total"},
		`time() - max by (chore) (b_seconds)`:                                                                    {"b_seconds"},
		`label_values(c_total, job)`:                                                                             {"c_total"},
		`rate(x[1m]) * 1e3 and on (instance) y offset 5m`:                                                        {"x", "y"},
	} {
		assert.Equal(t, want, seriesIn(expr), expr)
	}
}
