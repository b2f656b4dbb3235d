/** tscni runner CLI entry (grows in the runner issue). */
const argv = process.argv.slice(2);
process.stdout.write(`tscni ${argv.join(' ')}\n`);
