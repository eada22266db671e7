package simulator

// IDs of the demo data created by PortalOptions.Seed.
const (
	SeedAdmin  = 1 // "Alice Admin": portal administrator
	SeedSales  = 2 // "Bob Sales": may read and edit CRM
	SeedViewer = 3 // "Carol Viewer": may only read CRM

	SeedLeadThreeContacts = 1 // 3 contacts, the second one primary
	SeedLeadOneContact    = 2 // 1 contact
	SeedLeadNoContacts    = 3 // no contacts
	SeedLeadSixContacts   = 4 // 6 contacts
)

// seed fills a portal with demo data through the API tests use. Names
// include non-ASCII letters and HTML metacharacters on purpose, so escaping
// bugs show up in the demo.
func (p *Portal) seed() {
	for _, u := range []User{
		// Three ways a time zone reaches profile: chosen by name, automatic
		// from the browser (+03:00), and automatic at UTC.
		{ID: SeedAdmin, Name: "Alice", LastName: "Admin", Admin: true, CanRead: true, CanEdit: true, TimeZone: "Europe/Berlin"},
		{ID: SeedSales, Name: "Bob", LastName: "Sales", CanRead: true, CanEdit: true, TimeZoneOffset: 3 * 3600},
		{ID: SeedViewer, Name: "Carol", LastName: "Viewer", CanRead: true},
	} {
		p.AddUser(u)
	}
	contacts := []Contact{
		{ID: 1, Name: "Jürgen", LastName: "Groß", Post: "Einkaufsleiter"},
		{ID: 2, Name: "Анна", SecondName: "Сергеевна", LastName: "Смирнова", Post: "Директор"},
		{ID: 3, Name: "Siobhán", LastName: "O'Connor", Post: "Procurement"},
		{ID: 4, Name: "María José", LastName: "García Núñez", Post: "CEO"},
		{ID: 5, Name: "Søren", LastName: "Kierkegaard", Post: "Philosopher"},
		{ID: 6, Name: "Zoë", LastName: "Martin"},
		{ID: 7, Name: "伟", LastName: "李", Post: "经理"},
		{ID: 8, Name: "Fatima", LastName: "Al-Sayed"},
		{ID: 9, Name: "Ólafur", LastName: "Jónsson"},
		{ID: 10, Name: `Max "<b>Bold</b>"`, LastName: "Mustermann & Co", Post: "<script>alert(1)</script>"},
		{ID: 11, Name: "Chloé", LastName: "Dubois", Post: "Marketing"},
	}
	for _, c := range contacts {
		p.AddContact(c)
	}
	leads := []struct {
		lead     Lead
		contacts []int
		primary  int
	}{
		{Lead{ID: SeedLeadThreeContacts, Title: "Website inquiry – Groß GmbH", Name: "Jürgen", LastName: "Groß", AssignedByID: SeedSales}, []int{1, 2, 3}, 2},
		{Lead{ID: SeedLeadOneContact, Title: "Trade fair lead", Name: "María José", LastName: "García Núñez", StatusID: "IN_PROCESS", AssignedByID: SeedSales}, []int{4}, 4},
		{Lead{ID: SeedLeadNoContacts, Title: "Cold call, no contacts yet", AssignedByID: SeedAdmin}, nil, 0},
		{Lead{ID: SeedLeadSixContacts, Title: "Big conference <deal> & partners", AssignedByID: SeedAdmin}, []int{5, 6, 7, 8, 9, 10}, 5},
	}
	for _, l := range leads {
		p.AddLead(l.lead)
		for i, cid := range l.contacts {
			_ = p.LinkContact(l.lead.ID, cid, 10*(i+1), cid == l.primary) // both exist
		}
	}
}
