//! erpos-kernel
