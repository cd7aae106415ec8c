/* capstore vectors FILE...: check caps.txt-format conformance vectors. */
#include <stdio.h>

#include "cli.h"

int cmd_vectors(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "capstore vectors: not implemented yet\n");
    printf("0 passed, 1 failed\n");
    return 1;
}
