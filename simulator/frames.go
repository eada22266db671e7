package simulator

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// OpenLeadTab builds the POST Bitrix24 sends into the iframe when the user
// opens our CRM_LEAD_DETAIL_TAB on a lead card. It fails when the install is
// not finished, no such placement is bound, or the user cannot see the lead.
func (p *Portal) OpenLeadTab(userID, leadID int, lang string) (Frame, error) {
	return p.openLead(leadTab, userID, leadID, 0, lang)
}

// leadPlacement is a placement opened on one lead: the lead card's tab or
// the lead list's row menu.
type leadPlacement struct {
	code string // CRM_LEAD_DETAIL_TAB, CRM_LEAD_LIST_MENU
	uri  func(id string) string
}

// leadTab is the lead card's tab; the URI recorded from
// RefererUriExtractor.php is the card's path.
var leadTab = leadPlacement{"CRM_LEAD_DETAIL_TAB", func(id string) string { return "/crm/lead/details/" + id + "/" }}

// options is the placement's PLACEMENT_OPTIONS: the ID as a string and
// the page's path (JSON-encoded by PHP with escaped slashes); older
// servers send the ID alone.
func (lp leadPlacement) options(p *Portal, leadID int) map[string]string {
	id := strconv.Itoa(leadID)
	opts := map[string]string{"ID": id}
	if !p.legacy {
		opts["URI"] = lp.uri(id)
	}
	return opts
}

// openLead opens the n-th binding of lp on a lead, if the user may.
func (p *Portal) openLead(lp leadPlacement, userID, leadID, n int, lang string) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	// SILENT (docs disagree): placement-bind.md lets admins see widgets of an
	// unfinished install, widgets/index.md and app-info.md hide them from
	// everyone; the strict reading is used.
	if p.state != installed {
		return Frame{}, errors.New("simulator: app install is not finished; placements are hidden")
	}
	u, ok := p.users[userID]
	switch {
	case !ok:
		return Frame{}, fmt.Errorf("simulator: no user %d", userID)
	case p.leads[leadID] == nil:
		return Frame{}, fmt.Errorf("simulator: no lead %d", leadID)
	case !u.canRead():
		return Frame{}, fmt.Errorf("simulator: user %d cannot read lead %d", userID, leadID)
	}
	bound := p.bindingsLocked(lp.code)
	if n < 0 || n >= len(bound) {
		return Frame{}, fmt.Errorf("simulator: no %s placement is bound", lp.code)
	}
	return p.frameLocked(userID, framePlacement, bound[n].Handler, bound[n].Placement, lp.options(p, leadID), lang), nil
}

func (p *Portal) bindingsLocked(placement string) []PlacementBinding {
	var out []PlacementBinding
	for _, b := range p.placements {
		if b.Placement == placement {
			out = append(out, b)
		}
	}
	return out
}

// frameFieldOrder is the order in which the server template app.layout
// writes the frame's body fields (testdata/recorded/frame_lead_tab.json).
var frameFieldOrder = []string{"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "SERVER_ENDPOINT", "APPLICATION_TOKEN",
	"APPLICATION_SCOPE", "member_id", "status", "PLACEMENT", "PLACEMENT_OPTIONS"}

// frameLocked builds a frame POST: the query/body split follows
// api-reference/widgets/index.md ("some parameters come in the handler URL
// query string, the rest in the request body"). An empty lang is the
// portal's.
func (p *Portal) frameLocked(userID int, kind frameKind, handler, placement string, opts map[string]string, lang string) Frame {
	tok := p.s.issueLocked(p, userID)
	sid := randomHex(16)
	p.frames[sid] = frameInfo{kind: kind, userID: userID, placement: placement, options: opts, handler: handler}
	// PROTOCOL 0: the simulator speaks plain http.
	q := url.Values{"DOMAIN": {p.Domain()}, "PROTOCOL": {"0"}, "LANG": {cmp.Or(lang, p.lang)}, "APP_SID": {sid}}
	// The body as the server template app.layout builds it
	// (testdata/recorded/frame_*.json); older servers send no
	// SERVER_ENDPOINT, APPLICATION_TOKEN or APPLICATION_SCOPE.
	form := url.Values{"AUTH_ID": {tok.AccessToken}, "AUTH_EXPIRES": {strconv.Itoa(tok.ExpiresIn)},
		"REFRESH_ID": {tok.RefreshToken}, "member_id": {p.memberID}, "status": {p.s.app.Status}, "PLACEMENT": {placement}}
	if len(opts) > 0 {
		// Sent only when there are options: the installer has none.
		form.Set("PLACEMENT_OPTIONS", phpJSONString(opts))
	}
	if !p.legacy {
		form.Set("SERVER_ENDPOINT", p.s.serverEndpoint())
		form.Set("APPLICATION_TOKEN", p.appToken)
		form.Set("APPLICATION_SCOPE", p.s.scopeString())
	}
	sep := "?"
	if strings.Contains(handler, "?") {
		sep = "&"
	}
	return Frame{URL: handler + sep + q.Encode(), Query: q, Form: form, UserID: userID}
}
