{
  'targets': [
    {
      # Runs cargo: rustls-ffi and the Rust glue as one staticlib.
      'target_name': 'rustls_ffi',
      'type': 'none',
      'actions': [
        {
          'action_name': 'cargo_build',
          'inputs': [
            'Cargo.toml',
            'Cargo.lock',
            '<!@(node -p "require(\'fs\').readdirSync(\'native/rust\').filter(f => f.endsWith(\'.rs\')).map(f => \'native/rust/\' + f).join(\' \')")'
          ],
          'outputs': ['<(module_root_dir)/target/ffi/librustls_node.a'],
          'action': ['node', '<(module_root_dir)/scripts/build-rust.js']
        }
      ]
    },
    {
      'target_name': 'rustls_node',
      'dependencies': ['rustls_ffi'],
      # Every .cc under native/src (tls/, io/, plane/, proto/, js/).
      'sources': [
        '<!@(node -p "require(\'./scripts/native-sources.js\').join(\' \')")'
      ],
      'include_dirs': [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        '<(module_root_dir)/target/ffi/include',
        '<(module_root_dir)/native/src'
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS'
      ],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions', '-std=gnu++17'],
      # No C++ exceptions at all: nothing can unwind across N-API or the
      # rustls-ffi C ABI. Hidden visibility: only the module init is exported.
      'cflags_cc': ['-std=c++17', '-fno-exceptions', '-fvisibility=hidden', '-fvisibility-inlines-hidden', '-Wall', '-Wextra', '-Wno-unused-parameter'],
      'cflags': ['-fvisibility=hidden'],
      'ldflags': [
        # Keeps every rustls_* / rn_* symbol of the staticlib out of the
        # .node's dynamic symbol table.
        '-Wl,--exclude-libs,ALL',
        '-Wl,--gc-sections',
        # ...and exports nothing but the N-API module entry points.
        '-Wl,--version-script=<(module_root_dir)/native/exports.map'
      ],
      'libraries': ['<(module_root_dir)/target/ffi/librustls_node.a'],
      'conditions': [
        ['OS=="linux"', {
          'libraries': ['-lpthread', '-ldl', '-lm', '-lrt', '-lutil']
        }],
        ['OS=="mac"', {
          # The platform verifier and native-certs use the Security framework.
          'libraries': ['-framework Security', '-framework CoreFoundation'],
          'xcode_settings': {
            'GCC_ENABLE_CPP_EXCEPTIONS': 'NO',
            'GCC_SYMBOLS_PRIVATE_EXTERN': 'YES',
            'CLANG_CXX_LANGUAGE_STANDARD': 'c++17'
          },
          'ldflags!': ['-Wl,--exclude-libs,ALL', '-Wl,--gc-sections', '-Wl,--version-script=<(module_root_dir)/native/exports.map']
        }]
      ]
    }
  ]
}
