/* The capstore command: one function per subcommand. Exit statuses:
 * 0 success, 1 bad input or a failed check, 2 usage error. */
#ifndef CAPSTORE_CLI_H
#define CAPSTORE_CLI_H

int cmd_vectors(int argc, char **argv);

#endif
