"""Exchange formats: Camtrap DP, R secr text files, CSV."""
