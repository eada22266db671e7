package handlers_test

import (
	"net/http"
	"testing"
)

// BenchmarkOpenTab measures the app's side of opening the lead tab: frame
// parsing, verification and data batch against the simulator over
// loopback, session write, rendering. Run with
// go test -run '^$' -bench . -benchmem ./handlers/
func BenchmarkOpenTab(b *testing.B) {
	e := newTestEnv(b)
	e.install()
	e.portal.SetRateLimit(0, 0) // measure the app, not the leaky bucket
	lead := e.leadWithContacts(3)
	b.ReportAllocs()
	for b.Loop() {
		p := e.openTab(2, lead, "en")
		if p.status != http.StatusOK {
			b.Fatalf("status %d", p.status)
		}
	}
}

// BenchmarkRemove measures a click: context check, session read, one batch
// (read + delete), rendering. Contacts are re-linked outside the timer.
func BenchmarkRemove(b *testing.B) {
	e := newTestEnv(b)
	e.install()
	e.portal.SetRateLimit(0, 0)
	lead := e.leadWithContacts(3)
	links := e.portal.LeadContacts(lead)
	tab := e.openTab(2, lead, "en")
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for _, l := range links {
			_ = e.portal.LinkContact(lead, l.ContactID, l.Sort, l.Primary)
		}
		b.StartTimer()
		if p := e.clickRemove(tab); p.status != http.StatusOK {
			b.Fatalf("status %d", p.status)
		}
	}
}
