// Command pack builds the deployment zip (make package).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/entrasync/entrasync/internal/pack"
)

func main() {
	out := flag.String("out", "bin/entrasync.zip", "zip file to write")
	version := flag.String("version", "dev", "version stamped into the handler")
	flag.Parse()
	if err := pack.Build(context.Background(), pack.Options{AppDir: ".", Out: *out, Version: *version}); err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
	fmt.Println("package:", *out)
}
