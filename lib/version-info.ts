/** Version of this plugin set, printed in the about line. */
export const TSCNI_VERSION = '0.1.0';
