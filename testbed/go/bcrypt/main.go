// Command bcrypt reads a password from stdin (first line, without the newline) and prints its
// bcrypt hash. The test bed uses it for Dex's static passwords and gatehouse's admin password
// hash, so no htpasswd or Python package is needed. The password never appears in argv.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	cost := flag.Int("cost", 10, "bcrypt cost")
	verify := flag.String("verify", "", "instead of hashing, check stdin's password against this hash (exit 1 on mismatch)")
	flag.Parse()
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(os.Stderr, "bcrypt: no password on stdin")
		os.Exit(2)
	}
	pw := strings.TrimRight(line, "\r\n")
	if *verify != "" {
		if bcrypt.CompareHashAndPassword([]byte(*verify), []byte(pw)) != nil {
			os.Exit(1)
		}
		return
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), *cost)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bcrypt:", err)
		os.Exit(2)
	}
	fmt.Println(string(h))
}
