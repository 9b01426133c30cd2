{
  "target_defaults": {
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")"
    ],
    "defines": [
      "NAPI_VERSION=8",
      "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"
    ],
    "cflags_cc": [
      "-O3",
      "-std=gnu++17",
      "-fPIC",
      "-fno-math-errno"
    ],
    "xcode_settings": {
      "OTHER_CPLUSPLUSFLAGS": [
        "-O3",
        "-std=gnu++17"
      ]
    },
    "conditions": [
      [
        "target_arch=='x64'",
        {
          "defines": [
            "LOB_RTRL_X86"
          ]
        }
      ]
    ]
  },
  "targets": [
    {
      "target_name": "lob_rtrl_native",
      "sources": [
        "native/addon.cc",
        "native/parallel.cc",
        "native/isa-baseline.cc",
        "native/tbptt-baseline.cc"
      ],
      "conditions": [
        [
          "target_arch=='x64'",
          {
            "dependencies": [
              "lob_rtrl_avx2",
              "lob_rtrl_avx512",
              "lob_rtrl_tbptt_avx2"
            ]
          }
        ]
      ],
      "cflags_cc": [
        "-ffp-contract=off"
      ]
    }
  ],
  "conditions": [
    [
      "target_arch=='x64'",
      {
        "targets": [
          {
            "target_name": "lob_rtrl_avx2",
            "type": "static_library",
            "sources": [
              "native/isa-avx2.cc"
            ],
            "cflags_cc": [
              "-mavx2",
              "-mfma"
            ],
            "xcode_settings": {
              "OTHER_CPLUSPLUSFLAGS": [
                "-mavx2",
                "-mfma"
              ]
            }
          },
          {
            "target_name": "lob_rtrl_avx512",
            "type": "static_library",
            "sources": [
              "native/isa-avx512.cc"
            ],
            "cflags_cc": [
              "-mavx512f",
              "-Wno-maybe-uninitialized"
            ],
            "xcode_settings": {
              "OTHER_CPLUSPLUSFLAGS": [
                "-mavx512f"
              ]
            }
          },
          {
            "target_name": "lob_rtrl_tbptt_avx2",
            "type": "static_library",
            "sources": [
              "native/tbptt-avx2.cc"
            ],
            "cflags_cc": [
              "-mavx2",
              "-ffp-contract=off"
            ],
            "xcode_settings": {
              "OTHER_CPLUSPLUSFLAGS": [
                "-mavx2",
                "-ffp-contract=off"
              ]
            }
          }
        ]
      }
    ]
  ]
}
