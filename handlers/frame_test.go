package handlers

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePlacementOptions(t *testing.T) {
	good := map[string]int64{
		`{"ID":"123"}`: 123,
		`{"ID":"123","URI":"\/crm\/lead\/details\/123\/?IFRAME=Y&IFRAME_TYPE=SIDE_SLIDER"}`: 123,
		`{"ID":42}`:               42,
		` { "ID" : "7" } `:        7,
		`{"URI":"x","ID":"9999"}`: 9999,
	}
	for in, want := range good {
		id, err := ParsePlacementOptions(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, id, in)
	}
	bad := []string{
		``, `undefined`, `[]`, `["ID"]`, `{}`, `{"ID":""}`, `{"ID":"0"}`, `{"ID":"-1"}`, `{"ID":-1}`,
		`{"ID":"1e3"}`, `{"ID":1e3}`, `{"ID":"01"}`, `{"ID":"１２"}`, `{"ID":"12345678901234567890123"}`,
		`{"ID":{"x":1}}`, `{"ID":"1","ID":"2"}`, `{"ID":"1"} {"ID":"2"}`, `{"ID":"1"`, `{"ID":1.5}`,
		`{"ID":"1 "}`, `{"ID":null}`, `{"ID":true}`,
		`{"ID":"1","X":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		`{"ID":"1","X":"` + strings.Repeat("a", 1<<20) + `"}`,
	}
	for _, in := range bad {
		_, err := ParsePlacementOptions(in)
		assert.Error(t, err, "%.80s", in)
	}
}

func FuzzParsePlacementOptions(f *testing.F) {
	for _, s := range []string{`{"ID":"123"}`, `{"ID":5}`, `{"ID":"1","ID":"2"}`, `{"ID":"1e3"}`, `[1]`, `{"ID":"１"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParsePlacementOptions(s)
		if err == nil && id <= 0 {
			t.Fatalf("accepted non-positive ID %d from %q", id, s)
		}
	})
}

func validFrame() (url.Values, url.Values) {
	q := url.Values{"DOMAIN": {"x.bitrix24.com"}, "PROTOCOL": {"1"}, "LANG": {"de"}, "APP_SID": {"abc"}}
	b := url.Values{
		"AUTH_ID": {"a1b2c3"}, "AUTH_EXPIRES": {"3600"}, "REFRESH_ID": {"r1r2"}, "member_id": {"0123abcd"},
		"SERVER_ENDPOINT": {"https://oauth.bitrix.info/rest/"}, "status": {"F"}, "PLACEMENT": {"CRM_LEAD_DETAIL_TAB"},
		"PLACEMENT_OPTIONS": {`{"ID":"5"}`}, "APPLICATION_TOKEN": {"apptok"},
	}
	return q, b
}

func TestParseFrameSplitsQueryAndBody(t *testing.T) {
	q, b := validFrame()
	f, err := ParseFrame(q, b)
	require.NoError(t, err)
	assert.Equal(t, "de", f.Lang)
	assert.Equal(t, "x.bitrix24.com", f.Domain)
	assert.Equal(t, "a1b2c3", f.AuthID.Reveal())
	assert.Equal(t, "0123abcd", f.MemberID)

	// Fields in the wrong place are not read: AUTH_ID in the query is not a token.
	q2, b2 := validFrame()
	q2.Set("AUTH_ID", b2.Get("AUTH_ID"))
	b2.Del("AUTH_ID")
	_, err = ParseFrame(q2, b2)
	assert.ErrorIs(t, err, ErrBadFrame)

	for _, mut := range []func(b url.Values){
		func(b url.Values) { b.Del("member_id") },
		func(b url.Values) { b.Set("member_id", "a b") },
		func(b url.Values) { b.Set("AUTH_ID", strings.Repeat("a", 600)) },
		func(b url.Values) { b.Set("AUTH_ID", "tok\n") },
		func(b url.Values) { b.Set("PLACEMENT_OPTIONS", strings.Repeat("a", 5000)) },
	} {
		q, b := validFrame()
		mut(b)
		_, err := ParseFrame(q, b)
		assert.ErrorIs(t, err, ErrBadFrame)
	}
}

// tokenPattern and memberIDPattern are what isToken and isMemberID check,
// as regular expressions: the oracles of the tests and the fuzzers.
var (
	tokenPattern    = regexp.MustCompile(`^[\x21-\x7e]{1,512}$`)
	memberIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

func TestCheckersAsThePatternsSay(t *testing.T) {
	for _, s := range []string{"", "a", "a b", "tok\x7f", "ключ", "\xff\xfe", "a/b", "A-z_0.9", "!~",
		strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("x", 512), strings.Repeat("x", 513)} {
		assert.Equal(t, tokenPattern.MatchString(s), isToken(s), "token %q", s)
		assert.Equal(t, memberIDPattern.MatchString(s), isMemberID(s), "member id %q", s)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add("x.bitrix24.com", "en", "member1", "tok", `{"ID":"1"}`)
	f.Add("", "", "", "", "")
	f.Fuzz(func(t *testing.T, domain, lang, member, auth, opts string) {
		q := url.Values{"DOMAIN": {domain}, "LANG": {lang}}
		b := url.Values{"member_id": {member}, "AUTH_ID": {auth}, "PLACEMENT_OPTIONS": {opts}}
		fr, err := ParseFrame(q, b)
		if err != nil {
			return
		}
		if !memberIDPattern.MatchString(fr.MemberID) || !tokenPattern.MatchString(fr.AuthID.Reveal()) {
			t.Fatalf("accepted invalid frame %+v", fr)
		}
		if fr.Lang != "" && !langPattern.MatchString(fr.Lang) {
			t.Fatalf("accepted lang %q", fr.Lang)
		}
	})
}

func TestParseEvent(t *testing.T) {
	form := url.Values{
		"event": {"ONAPPUNINSTALL"}, "data[LANGUAGE_ID]": {"de"}, "data[CLEAN]": {"1"}, "ts": {"1466439714"},
		"auth[domain]": {"x.bitrix24.com"}, "auth[member_id]": {"m1"}, "auth[application_token]": {"tok"},
		"data[FIELDS][ID]": {"5"},
	}
	ev, err := ParseEvent(form)
	require.NoError(t, err)
	assert.Equal(t, "ONAPPUNINSTALL", ev.Name)
	assert.Equal(t, "1", ev.Data["CLEAN"])
	assert.Equal(t, "m1", ev.Auth["member_id"])
	assert.Equal(t, "tok", ev.Auth["application_token"])
	assert.Equal(t, "5", ev.Data["FIELDS][ID"])

	form.Del("auth[member_id]")
	_, err = ParseEvent(form)
	assert.ErrorIs(t, err, ErrBadFrame)
	_, err = ParseEvent(url.Values{"auth[member_id]": {"m1"}})
	assert.ErrorIs(t, err, ErrBadFrame)
}

func FuzzParseEvent(f *testing.F) {
	f.Add("event=ONAPPINSTALL&auth[member_id]=m&auth[application_token]=t&data[CLEAN]=1")
	f.Add("auth[=x&auth]=y&auth[]=z")
	f.Fuzz(func(t *testing.T, raw string) {
		// A malformed body still yields the pairs before the bad one, and
		// the app's form parsing reads those: so must the fuzzer.
		form, _ := url.ParseQuery(raw)
		ev, err := ParseEvent(form)
		if err != nil {
			return
		}
		if ev.Name == "" || !memberIDPattern.MatchString(ev.Auth["member_id"]) {
			t.Fatalf("accepted %q", raw)
		}
	})
}
