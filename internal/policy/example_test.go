package policy_test

import (
	"errors"
	"fmt"
	"net/netip"

	"relaybox/internal/policy"
)

func Example() {
	rules, err := policy.NewRules([]string{"campus.test", "*.dept.campus.test"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, rcpt := range []string{
		"<Printer@Lab.Dept.CAMPUS.test.>",
		"user%outside.test@campus.test",
		"user@outside.test",
	} {
		a, err := rules.Recipient(rcpt)
		var rej *policy.RejectError
		if errors.As(err, &rej) {
			fmt.Printf("%s -> %d %d.%d.%d %s\n", rcpt, rej.Code, rej.Enhanced[0], rej.Enhanced[1], rej.Enhanced[2], rej.Reason)
			continue
		}
		fmt.Printf("%s -> accepted as %s\n", rcpt, a)
	}

	nets, _ := policy.NetworkRules([]string{"10.0.0.0/8"})
	fmt.Println(nets.Allowed(netip.MustParseAddr("::ffff:10.1.2.3")))
	fmt.Println(policy.SanitizeHelo("scanner\r\nX-Evil: 1"))
	// Output:
	// <Printer@Lab.Dept.CAMPUS.test.> -> accepted as Printer@lab.dept.campus.test
	// user%outside.test@campus.test -> 553 5.1.3 '%' in the local part is not accepted
	// user@outside.test -> 550 5.7.1 relaying denied: outside.test is not a campus domain
	// true
	// scanner??X-Evil:?1
}
