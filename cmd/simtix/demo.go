package main

import (
	"github.com/spf13/cobra"

	"github.com/simtix/simtix/internal/demo"
)

func newDemoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "The whole story on the embedded defaults, in one process",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Run(cmd.Context(), cmd.OutOrStdout())
		},
	}
}
