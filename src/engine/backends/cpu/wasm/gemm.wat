;; f32 matrix product micro-kernel, 128-bit SIMD: C[4·mp × ldc] (+)= A·B over column panels
;; jStart ≤ j < jEnd (threads split the columns). Operands are found through address tables, so
;; one kernel serves packed panels and rows read in place:
;;   row r of A (r < 4·mp) starts at aTable[r] (an i32 byte address) and steps aStep bytes per k:
;;     packed panels [k][4] have aStep 16; rows contiguous along k have aStep 4;
;;   row p of B (p < k) starts at bTable[p] + j·bPanel for column panel j, 8 contiguous floats:
;;     packed panels [k][8] have bTable[p] = base + 32p and bPanel = 32k; shifted rows of a padded
;;     image (a convolution without im2col) have bPanel 32;
;;   C is row-major with a leading dimension of ldc floats.
;;   bStride ≠ 0 says B's rows are evenly spaced, row p at bTable[0] + p·bStride (packed panels:
;;     32; the tiles of a Winograd transform: their row pitch), so the loop over k reads no table.
;; Each 4×8 tile of C lives in eight f32x4 accumulators while the kernel walks k:
;;   c[r][0:4] += A[r,p]·B[p,0:4],  c[r][4:8] += A[r,p]·B[p,4:8]   (r = 0..3).
(module
  (import "env" "memory" (memory 1 65536 SHARED))
  (func (export "gemm")
    (param $aTable i32) (param $aStep i32) (param $bTable i32) (param $bPanel i32)
    (param $cp i32) (param $mp i32) (param $jStart i32) (param $jEnd i32) (param $k i32)
    (param $ldc i32) (param $accumulate i32) (param $bStride i32)
    (local $i i32) (local $j i32) (local $p i32) (local $ta i32) (local $tb i32) (local $bj i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32)
    (local $row i32) (local $pc i32) (local $rowBytes i32)
    (local $a v128) (local $b0 v128) (local $b1 v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local.set $rowBytes (i32.shl (local.get $ldc) (i32.const 2)))
    (local.set $j (local.get $jStart))
    (block $jdone
      (loop $jloop
        (br_if $jdone (i32.ge_u (local.get $j) (local.get $jEnd)))
        (local.set $bj (i32.mul (local.get $j) (local.get $bPanel)))
        (local.set $i (i32.const 0))
        (block $idone
          (loop $iloop
            (br_if $idone (i32.ge_u (local.get $i) (local.get $mp)))
            ;; pc = cp + (4i·ldc + 8j)·4
            (local.set $pc
              (i32.add (local.get $cp)
                (i32.add
                  (i32.mul (i32.shl (local.get $i) (i32.const 2)) (local.get $rowBytes))
                  (i32.shl (local.get $j) (i32.const 5)))))
            (if (local.get $accumulate)
              (then
                (local.set $c00 (v128.load (local.get $pc)))
                (local.set $c01 (v128.load offset=16 (local.get $pc)))
                (local.set $c10 (v128.load (i32.add (local.get $pc) (local.get $rowBytes))))
                (local.set $c11 (v128.load offset=16 (i32.add (local.get $pc) (local.get $rowBytes))))
                (local.set $c20 (v128.load (i32.add (local.get $pc) (i32.shl (local.get $rowBytes) (i32.const 1)))))
                (local.set $c21 (v128.load offset=16 (i32.add (local.get $pc) (i32.shl (local.get $rowBytes) (i32.const 1)))))
                (local.set $c30 (v128.load (i32.add (local.get $pc) (i32.mul (local.get $rowBytes) (i32.const 3)))))
                (local.set $c31 (v128.load offset=16 (i32.add (local.get $pc) (i32.mul (local.get $rowBytes) (i32.const 3))))))
              (else
                (local.set $c00 (v128.const i32x4 0 0 0 0))
                (local.set $c01 (v128.const i32x4 0 0 0 0))
                (local.set $c10 (v128.const i32x4 0 0 0 0))
                (local.set $c11 (v128.const i32x4 0 0 0 0))
                (local.set $c20 (v128.const i32x4 0 0 0 0))
                (local.set $c21 (v128.const i32x4 0 0 0 0))
                (local.set $c30 (v128.const i32x4 0 0 0 0))
                (local.set $c31 (v128.const i32x4 0 0 0 0))))
            (local.set $ta (i32.add (local.get $aTable) (i32.shl (local.get $i) (i32.const 4))))
            (local.set $p0 (i32.load (local.get $ta)))
            (local.set $p1 (i32.load offset=4 (local.get $ta)))
            (local.set $p2 (i32.load offset=8 (local.get $ta)))
            (local.set $p3 (i32.load offset=12 (local.get $ta)))
            (if (local.get $bStride)
              (then
                ;; evenly spaced rows of B: row p at bTable[0] + p·bStride (no table load per p)
                (local.set $row (i32.add (local.get $bj) (i32.load (local.get $bTable))))
                (local.set $p (local.get $k))
                (block $sdone
                  (loop $sloop
                    (br_if $sdone (i32.eqz (local.get $p)))
                    (local.set $b0 (v128.load (local.get $row)))
                    (local.set $b1 (v128.load offset=16 (local.get $row)))
                    (local.set $a (v128.load32_splat (local.get $p0)))
                    (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $a (v128.load32_splat (local.get $p1)))
                    (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $a (v128.load32_splat (local.get $p2)))
                    (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $a (v128.load32_splat (local.get $p3)))
                    (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $p0 (i32.add (local.get $p0) (local.get $aStep)))
                    (local.set $p1 (i32.add (local.get $p1) (local.get $aStep)))
                    (local.set $p2 (i32.add (local.get $p2) (local.get $aStep)))
                    (local.set $p3 (i32.add (local.get $p3) (local.get $aStep)))
                    (local.set $row (i32.add (local.get $row) (local.get $bStride)))
                    (local.set $p (i32.sub (local.get $p) (i32.const 1)))
                    (br $sloop))))
              (else
                (local.set $tb (local.get $bTable))
                (local.set $p (local.get $k))
                (block $pdone
                  (loop $ploop
                    (br_if $pdone (i32.eqz (local.get $p)))
                    (local.set $row (i32.add (local.get $bj) (i32.load (local.get $tb))))
                    (local.set $b0 (v128.load (local.get $row)))
                    (local.set $b1 (v128.load offset=16 (local.get $row)))
                    (local.set $a (v128.load32_splat (local.get $p0)))
                    (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $a (v128.load32_splat (local.get $p1)))
                    (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $a (v128.load32_splat (local.get $p2)))
                    (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $a (v128.load32_splat (local.get $p3)))
                    (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $a) (local.get $b0))))
                    (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $a) (local.get $b1))))
                    (local.set $p0 (i32.add (local.get $p0) (local.get $aStep)))
                    (local.set $p1 (i32.add (local.get $p1) (local.get $aStep)))
                    (local.set $p2 (i32.add (local.get $p2) (local.get $aStep)))
                    (local.set $p3 (i32.add (local.get $p3) (local.get $aStep)))
                    (local.set $tb (i32.add (local.get $tb) (i32.const 4)))
                    (local.set $p (i32.sub (local.get $p) (i32.const 1)))
                    (br $ploop)))))
            (v128.store (local.get $pc) (local.get $c00))
            (v128.store offset=16 (local.get $pc) (local.get $c01))
            (local.set $pc (i32.add (local.get $pc) (local.get $rowBytes)))
            (v128.store (local.get $pc) (local.get $c10))
            (v128.store offset=16 (local.get $pc) (local.get $c11))
            (local.set $pc (i32.add (local.get $pc) (local.get $rowBytes)))
            (v128.store (local.get $pc) (local.get $c20))
            (v128.store offset=16 (local.get $pc) (local.get $c21))
            (local.set $pc (i32.add (local.get $pc) (local.get $rowBytes)))
            (v128.store (local.get $pc) (local.get $c30))
            (v128.store offset=16 (local.get $pc) (local.get $c31))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $iloop)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $jloop))))

  ;; Strided row copy: for a < n1, b < n2, c < n3, the `len` floats at
  ;;   src + a·ss1 + b·ss2 + c·ss3  go to  dst + a·ds1 + b·ds2 + c·ds3
  ;; (byte addresses and strides), four at a time; the layout moves around a convolution (into
  ;; the padded input, out of the product's padded grid) without a JS loop per element.
  (func (export "copy_rows")
    (param $src i32) (param $dst i32) (param $len i32)
    (param $n1 i32) (param $ss1 i32) (param $ds1 i32)
    (param $n2 i32) (param $ss2 i32) (param $ds2 i32)
    (param $n3 i32) (param $ss3 i32) (param $ds3 i32)
    (local $a i32) (local $b i32) (local $c i32) (local $s i32) (local $d i32) (local $e i32)
    (local $bytes i32) (local $vec i32)
    (local.set $bytes (i32.shl (local.get $len) (i32.const 2)))
    (local.set $vec (i32.and (local.get $bytes) (i32.const -16)))
    (local.set $a (i32.const 0))
    (block $adone (loop $aloop
      (br_if $adone (i32.ge_u (local.get $a) (local.get $n1)))
      (local.set $b (i32.const 0))
      (block $bdone (loop $bloop
        (br_if $bdone (i32.ge_u (local.get $b) (local.get $n2)))
        (local.set $c (i32.const 0))
        (block $cdone (loop $cloop
          (br_if $cdone (i32.ge_u (local.get $c) (local.get $n3)))
          (local.set $s (i32.add (local.get $src)
            (i32.add (i32.mul (local.get $a) (local.get $ss1))
              (i32.add (i32.mul (local.get $b) (local.get $ss2)) (i32.mul (local.get $c) (local.get $ss3))))))
          (local.set $d (i32.add (local.get $dst)
            (i32.add (i32.mul (local.get $a) (local.get $ds1))
              (i32.add (i32.mul (local.get $b) (local.get $ds2)) (i32.mul (local.get $c) (local.get $ds3))))))
          (local.set $e (i32.add (local.get $s) (local.get $vec)))
          (block $vdone (loop $vloop
            (br_if $vdone (i32.ge_u (local.get $s) (local.get $e)))
            (v128.store (local.get $d) (v128.load (local.get $s)))
            (local.set $s (i32.add (local.get $s) (i32.const 16)))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br $vloop)))
          (local.set $e (i32.add (local.get $e) (i32.sub (local.get $bytes) (local.get $vec))))
          (block $tdone (loop $tloop
            (br_if $tdone (i32.ge_u (local.get $s) (local.get $e)))
            (i32.store (local.get $d) (i32.load (local.get $s)))
            (local.set $s (i32.add (local.get $s) (i32.const 4)))
            (local.set $d (i32.add (local.get $d) (i32.const 4)))
            (br $tloop)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $cloop)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bloop)))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (br $aloop))))

  ;; The same copy of float32 rows plus a scalar per (a, b): dst = src + bias[a·bs1 + b·bs2] (a
  ;; convolution's bias added as its output leaves the product: b is the output channel).
  (func (export "copy_rows_bias")
    (param $src i32) (param $dst i32) (param $len i32)
    (param $n1 i32) (param $ss1 i32) (param $ds1 i32)
    (param $n2 i32) (param $ss2 i32) (param $ds2 i32)
    (param $n3 i32) (param $ss3 i32) (param $ds3 i32)
    (param $bias i32) (param $bs1 i32) (param $bs2 i32)
    (local $bv v128) (local $a i32) (local $b i32) (local $c i32) (local $s i32) (local $d i32) (local $e i32)
    (local $bytes i32) (local $vec i32)
    (local.set $bytes (i32.shl (local.get $len) (i32.const 2)))
    (local.set $vec (i32.and (local.get $bytes) (i32.const -16)))
    (local.set $a (i32.const 0))
    (block $adone (loop $aloop
      (br_if $adone (i32.ge_u (local.get $a) (local.get $n1)))
      (local.set $b (i32.const 0))
      (block $bdone (loop $bloop
        (br_if $bdone (i32.ge_u (local.get $b) (local.get $n2)))
        (local.set $bv (v128.load32_splat (i32.add (local.get $bias)
          (i32.add (i32.mul (local.get $a) (local.get $bs1)) (i32.mul (local.get $b) (local.get $bs2))))))
        (local.set $c (i32.const 0))
        (block $cdone (loop $cloop
          (br_if $cdone (i32.ge_u (local.get $c) (local.get $n3)))
          (local.set $s (i32.add (local.get $src)
            (i32.add (i32.mul (local.get $a) (local.get $ss1))
              (i32.add (i32.mul (local.get $b) (local.get $ss2)) (i32.mul (local.get $c) (local.get $ss3))))))
          (local.set $d (i32.add (local.get $dst)
            (i32.add (i32.mul (local.get $a) (local.get $ds1))
              (i32.add (i32.mul (local.get $b) (local.get $ds2)) (i32.mul (local.get $c) (local.get $ds3))))))
          (local.set $e (i32.add (local.get $s) (local.get $vec)))
          (block $vdone (loop $vloop
            (br_if $vdone (i32.ge_u (local.get $s) (local.get $e)))
            (v128.store (local.get $d) (f32x4.add (v128.load (local.get $s)) (local.get $bv)))
            (local.set $s (i32.add (local.get $s) (i32.const 16)))
            (local.set $d (i32.add (local.get $d) (i32.const 16)))
            (br $vloop)))
          (local.set $e (i32.add (local.get $e) (i32.sub (local.get $bytes) (local.get $vec))))
          (block $tdone (loop $tloop
            (br_if $tdone (i32.ge_u (local.get $s) (local.get $e)))
            (f32.store (local.get $d) (f32.add (f32.load (local.get $s)) (f32x4.extract_lane 0 (local.get $bv))))
            (local.set $s (i32.add (local.get $s) (i32.const 4)))
            (local.set $d (i32.add (local.get $d) (i32.const 4)))
            (br $tloop)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $cloop)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $bloop)))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (br $aloop))))

  ;; Winograd F(2×2, 3×3) input transform (Lavin & Gray, "Fast Algorithms for Convolutional Neural
  ;; Networks", 2016): V = Bᵀ d B for every 4×4 input tile d, with
  ;;   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
  ;; The input is padded and channel-major: channel ci, image img, row y, column x at
  ;;   src + ci·ldb + img·plane + y·rowBytes + 4x,
  ;; and tile (ty, tx) of an image reads rows 2ty..2ty+3, columns 2tx..2tx+3. Tile t = (img·th +
  ;; ty)·tw + tx; element ξ = 4i + j of its V goes to dst + ξ·xi + ci·ldt + 4t. Four tiles of a row
  ;; at a time, one per lane (the even and odd columns pulled apart by shuffles); the last four of
  ;; a row start at tw − 4 (tw ≥ 4), so a tile may be computed twice, the same way both times.
  (func (export "winograd_in")
    (param $src i32) (param $dst i32) (param $cIn i32) (param $ldb i32) (param $n i32)
    (param $plane i32) (param $th i32) (param $tw i32) (param $rowBytes i32) (param $xi i32)
    (param $ldt i32)
    (local $ci i32) (local $img i32) (local $ty i32) (local $tx i32) (local $tx0 i32)
    (local $r i32) (local $o i32) (local $t i32)
    (local $v0 v128) (local $v1 v128) (local $v2 v128) (local $v3 v128)
    (local $d0 v128) (local $d1 v128) (local $d2 v128) (local $d3 v128)
    (local $w00 v128) (local $w01 v128) (local $w02 v128) (local $w03 v128) (local $w10 v128) (local $w11 v128) (local $w12 v128) (local $w13 v128) (local $w20 v128) (local $w21 v128) (local $w22 v128) (local $w23 v128) (local $w30 v128) (local $w31 v128) (local $w32 v128) (local $w33 v128)
    (local.set $ci (i32.const 0))
    (block $cdone (loop $cloop
      (br_if $cdone (i32.ge_u (local.get $ci) (local.get $cIn)))
      (local.set $img (i32.const 0))
      (block $ndone (loop $nloop
        (br_if $ndone (i32.ge_u (local.get $img) (local.get $n)))
        (local.set $ty (i32.const 0))
        (block $ydone (loop $yloop
          (br_if $ydone (i32.ge_u (local.get $ty) (local.get $th)))
          (local.set $tx (i32.const 0))
          (loop $xloop
            (local.set $tx0
              (select (local.get $tx) (i32.sub (local.get $tw) (i32.const 4))
                (i32.lt_u (local.get $tx) (i32.sub (local.get $tw) (i32.const 4)))))
            ;; r = the tile row's first input row, o = where its V[0] goes
            (local.set $r
              (i32.add
                (i32.add (local.get $src) (i32.mul (local.get $ci) (local.get $ldb)))
                (i32.add (i32.mul (local.get $img) (local.get $plane))
                  (i32.add (i32.mul (i32.shl (local.get $ty) (i32.const 1)) (local.get $rowBytes))
                    (i32.shl (local.get $tx0) (i32.const 3))))))
            (local.set $t
              (i32.add (i32.mul (i32.add (i32.mul (local.get $img) (local.get $th)) (local.get $ty))
                (local.get $tw)) (local.get $tx0)))
            (local.set $o
              (i32.add (local.get $dst)
                (i32.add (i32.mul (local.get $ci) (local.get $ldt)) (i32.shl (local.get $t) (i32.const 2)))))
        ;; row 0: d[0][0..3] of the four tiles, then w[0][·] = d[0][·]·B
        (local.set $v0 (v128.load (local.get $r)))
        (local.set $v1 (v128.load offset=16 (local.get $r)))
        (local.set $v2 (v128.load offset=8 (local.get $r)))
        (local.set $v3 (v128.load offset=24 (local.get $r)))
        (local.set $d0 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1)))
        (local.set $d1 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1)))
        (local.set $d2 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v2) (local.get $v3)))
        (local.set $d3 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v2) (local.get $v3)))
        (local.set $w00 (f32x4.sub (local.get $d0) (local.get $d2)))
        (local.set $w01 (f32x4.add (local.get $d1) (local.get $d2)))
        (local.set $w02 (f32x4.sub (local.get $d2) (local.get $d1)))
        (local.set $w03 (f32x4.sub (local.get $d1) (local.get $d3)))
        (local.set $r (i32.add (local.get $r) (local.get $rowBytes)))
        ;; row 1: d[1][0..3] of the four tiles, then w[1][·] = d[1][·]·B
        (local.set $v0 (v128.load (local.get $r)))
        (local.set $v1 (v128.load offset=16 (local.get $r)))
        (local.set $v2 (v128.load offset=8 (local.get $r)))
        (local.set $v3 (v128.load offset=24 (local.get $r)))
        (local.set $d0 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1)))
        (local.set $d1 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1)))
        (local.set $d2 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v2) (local.get $v3)))
        (local.set $d3 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v2) (local.get $v3)))
        (local.set $w10 (f32x4.sub (local.get $d0) (local.get $d2)))
        (local.set $w11 (f32x4.add (local.get $d1) (local.get $d2)))
        (local.set $w12 (f32x4.sub (local.get $d2) (local.get $d1)))
        (local.set $w13 (f32x4.sub (local.get $d1) (local.get $d3)))
        (local.set $r (i32.add (local.get $r) (local.get $rowBytes)))
        ;; row 2: d[2][0..3] of the four tiles, then w[2][·] = d[2][·]·B
        (local.set $v0 (v128.load (local.get $r)))
        (local.set $v1 (v128.load offset=16 (local.get $r)))
        (local.set $v2 (v128.load offset=8 (local.get $r)))
        (local.set $v3 (v128.load offset=24 (local.get $r)))
        (local.set $d0 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1)))
        (local.set $d1 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1)))
        (local.set $d2 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v2) (local.get $v3)))
        (local.set $d3 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v2) (local.get $v3)))
        (local.set $w20 (f32x4.sub (local.get $d0) (local.get $d2)))
        (local.set $w21 (f32x4.add (local.get $d1) (local.get $d2)))
        (local.set $w22 (f32x4.sub (local.get $d2) (local.get $d1)))
        (local.set $w23 (f32x4.sub (local.get $d1) (local.get $d3)))
        (local.set $r (i32.add (local.get $r) (local.get $rowBytes)))
        ;; row 3: d[3][0..3] of the four tiles, then w[3][·] = d[3][·]·B
        (local.set $v0 (v128.load (local.get $r)))
        (local.set $v1 (v128.load offset=16 (local.get $r)))
        (local.set $v2 (v128.load offset=8 (local.get $r)))
        (local.set $v3 (v128.load offset=24 (local.get $r)))
        (local.set $d0 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1)))
        (local.set $d1 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1)))
        (local.set $d2 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v2) (local.get $v3)))
        (local.set $d3 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v2) (local.get $v3)))
        (local.set $w30 (f32x4.sub (local.get $d0) (local.get $d2)))
        (local.set $w31 (f32x4.add (local.get $d1) (local.get $d2)))
        (local.set $w32 (f32x4.sub (local.get $d2) (local.get $d1)))
        (local.set $w33 (f32x4.sub (local.get $d1) (local.get $d3)))
        (local.set $r (i32.add (local.get $r) (local.get $rowBytes)))
        ;; V[i][j] = (Bᵀ w)[i][j], ξ = 4i + j in order
        (v128.store (local.get $o) (f32x4.sub (local.get $w00) (local.get $w20)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w01) (local.get $w21)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w02) (local.get $w22)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w03) (local.get $w23)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.add (local.get $w10) (local.get $w20)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.add (local.get $w11) (local.get $w21)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.add (local.get $w12) (local.get $w22)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.add (local.get $w13) (local.get $w23)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w20) (local.get $w10)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w21) (local.get $w11)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w22) (local.get $w12)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w23) (local.get $w13)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w10) (local.get $w30)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w11) (local.get $w31)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w12) (local.get $w32)))
        (local.set $o (i32.add (local.get $o) (local.get $xi)))
        (v128.store (local.get $o) (f32x4.sub (local.get $w13) (local.get $w33)))
            (local.set $tx (i32.add (local.get $tx) (i32.const 4)))
            (br_if $xloop (i32.lt_u (local.get $tx) (local.get $tw))))
          (local.set $ty (i32.add (local.get $ty) (i32.const 1)))
          (br $yloop)))
        (local.set $img (i32.add (local.get $img) (i32.const 1)))
        (br $nloop)))
      (local.set $ci (i32.add (local.get $ci) (i32.const 1)))
      (br $cloop))))

  ;; Winograd F(2×2, 3×3) output transform: Y = Aᵀ M A for every tile, Aᵀ = [1 1 1 0; 0 1 −1 −1],
  ;; with M[ξ] of output channel co and tile t at src + ξ·xi + co·ldc + 4t (t as in winograd_in).
  ;; The 2×2 outputs go to dst as [img][co][2th][2tw] floats (rows and columns past the image's
  ;; are dropped by the caller). Four tiles at a time as in winograd_in.
  (func (export "winograd_out")
    (param $src i32) (param $dst i32) (param $cOut i32) (param $ldc i32) (param $xi i32)
    (param $n i32) (param $th i32) (param $tw i32)
    (local $co i32) (local $img i32) (local $ty i32) (local $tx i32) (local $tx0 i32)
    (local $r i32) (local $o i32) (local $rowBytes i32)
    (local $m0 v128) (local $m1 v128) (local $m2 v128) (local $m3 v128)
    (local $y0 v128) (local $y1 v128)
    (local $z00 v128) (local $z01 v128) (local $z10 v128) (local $z11 v128) (local $z20 v128) (local $z21 v128) (local $z30 v128) (local $z31 v128)
    (local.set $rowBytes (i32.shl (local.get $tw) (i32.const 3)))
    (local.set $co (i32.const 0))
    (block $cdone (loop $cloop
      (br_if $cdone (i32.ge_u (local.get $co) (local.get $cOut)))
      (local.set $img (i32.const 0))
      (block $ndone (loop $nloop
        (br_if $ndone (i32.ge_u (local.get $img) (local.get $n)))
        (local.set $ty (i32.const 0))
        (block $ydone (loop $yloop
          (br_if $ydone (i32.ge_u (local.get $ty) (local.get $th)))
          (local.set $tx (i32.const 0))
          (loop $xloop
            (local.set $tx0
              (select (local.get $tx) (i32.sub (local.get $tw) (i32.const 4))
                (i32.lt_u (local.get $tx) (i32.sub (local.get $tw) (i32.const 4)))))
            (local.set $r
              (i32.add (i32.add (local.get $src) (i32.mul (local.get $co) (local.get $ldc)))
                (i32.shl
                  (i32.add (i32.mul (i32.add (i32.mul (local.get $img) (local.get $th)) (local.get $ty))
                    (local.get $tw)) (local.get $tx0))
                  (i32.const 2))))
            ;; o = output row 2ty, column 2tx0 of (img, co)
            (local.set $o
              (i32.add (local.get $dst)
                (i32.add
                  (i32.mul
                    (i32.shl (i32.add (i32.mul (local.get $img) (local.get $cOut)) (local.get $co))
                      (i32.const 1))
                    (i32.mul (local.get $th) (local.get $rowBytes)))
                  (i32.add (i32.mul (i32.shl (local.get $ty) (i32.const 1)) (local.get $rowBytes))
                    (i32.shl (local.get $tx0) (i32.const 3))))))
        (local.set $m0 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m1 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m2 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m3 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $z00 (f32x4.add (f32x4.add (local.get $m0) (local.get $m1)) (local.get $m2)))
        (local.set $z01 (f32x4.sub (f32x4.sub (local.get $m1) (local.get $m2)) (local.get $m3)))
        (local.set $m0 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m1 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m2 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m3 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $z10 (f32x4.add (f32x4.add (local.get $m0) (local.get $m1)) (local.get $m2)))
        (local.set $z11 (f32x4.sub (f32x4.sub (local.get $m1) (local.get $m2)) (local.get $m3)))
        (local.set $m0 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m1 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m2 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m3 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $z20 (f32x4.add (f32x4.add (local.get $m0) (local.get $m1)) (local.get $m2)))
        (local.set $z21 (f32x4.sub (f32x4.sub (local.get $m1) (local.get $m2)) (local.get $m3)))
        (local.set $m0 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m1 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m2 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $m3 (v128.load (local.get $r)))
        (local.set $r (i32.add (local.get $r) (local.get $xi)))
        (local.set $z30 (f32x4.add (f32x4.add (local.get $m0) (local.get $m1)) (local.get $m2)))
        (local.set $z31 (f32x4.sub (f32x4.sub (local.get $m1) (local.get $m2)) (local.get $m3)))
        ;; y[0][·] = z0 + z1 + z2, y[1][·] = z1 − z2 − z3; lanes interleaved into output rows
        (local.set $y0 (f32x4.add (f32x4.add (local.get $z00) (local.get $z10)) (local.get $z20)))
        (local.set $y1 (f32x4.add (f32x4.add (local.get $z01) (local.get $z11)) (local.get $z21)))
        (v128.store (local.get $o) (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $y0) (local.get $y1)))
        (v128.store offset=16 (local.get $o) (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $y0) (local.get $y1)))
        (local.set $o (i32.add (local.get $o) (local.get $rowBytes)))
        (local.set $y0 (f32x4.sub (f32x4.sub (local.get $z10) (local.get $z20)) (local.get $z30)))
        (local.set $y1 (f32x4.sub (f32x4.sub (local.get $z11) (local.get $z21)) (local.get $z31)))
        (v128.store (local.get $o) (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $y0) (local.get $y1)))
        (v128.store offset=16 (local.get $o) (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $y0) (local.get $y1)))
            (local.set $tx (i32.add (local.get $tx) (i32.const 4)))
            (br_if $xloop (i32.lt_u (local.get $tx) (local.get $tw))))
          (local.set $ty (i32.add (local.get $ty) (i32.const 1)))
          (br $yloop)))
        (local.set $img (i32.add (local.get $img) (i32.const 1)))
        (br $nloop)))
      (local.set $co (i32.add (local.get $co) (i32.const 1)))
      (br $cloop))))

  ;; The adjoint of winograd_out, for the weight gradient: dM = A dY Aᵀ for every tile's 2×2 block of
  ;; the output gradient, A = [1 0; 1 1; 1 −1; 0 −1]. dY is read as [img][cp][2th][2tw] floats at src
  ;; (rowBytes = 8tw; zeros past the image and for channels past the real ones), cp a multiple of 8.
  ;; dM[ξ] of channel co and tile t goes to dst + ξ·xi + (co div 8)·panel + 32t + 4(co mod 8): panels
  ;; of 8 channels, the gemm's packed B layout. Four tiles (lanes) of four channels at a time: the
  ;; 16 vectors of each channel go through 1 KiB at `scratch`, and a 4×4 transpose per ξ turns
  ;; them into four channels of each tile.
  (func (export "winograd_grad_out")
    (param $src i32) (param $dst i32) (param $cp i32) (param $n i32) (param $th i32) (param $tw i32)
    (param $xi i32) (param $panel i32) (param $scratch i32)
    (local $img i32) (local $ty i32) (local $tx i32) (local $tx0 i32) (local $co i32) (local $c i32)
    (local $r i32) (local $o i32) (local $w i32) (local $d i32) (local $e i32) (local $t i32)
    (local $rowBytes i32) (local $plane i32)
    (local $v0 v128) (local $v1 v128) (local $y00 v128) (local $y01 v128) (local $y10 v128) (local $y11 v128)
    (local $q10 v128) (local $q11 v128) (local $q20 v128) (local $q21 v128) (local $q30 v128) (local $q31 v128)
    (local.set $rowBytes (i32.shl (local.get $tw) (i32.const 3)))
    (local.set $plane (i32.mul (i32.shl (local.get $th) (i32.const 1)) (local.get $rowBytes)))
    (local.set $img (i32.const 0))
    (block $ndone (loop $nloop
      (br_if $ndone (i32.ge_u (local.get $img) (local.get $n)))
      (local.set $ty (i32.const 0))
      (block $ydone (loop $yloop
        (br_if $ydone (i32.ge_u (local.get $ty) (local.get $th)))
        (local.set $tx (i32.const 0))
        (loop $xloop
          (local.set $tx0
            (select (local.get $tx) (i32.sub (local.get $tw) (i32.const 4))
              (i32.lt_u (local.get $tx) (i32.sub (local.get $tw) (i32.const 4)))))
          (local.set $t
            (i32.add (i32.mul (i32.add (i32.mul (local.get $img) (local.get $th)) (local.get $ty))
              (local.get $tw)) (local.get $tx0)))
          (local.set $co (i32.const 0))
          (loop $coloop
            (local.set $c (i32.const 0))
            (loop $cloop
              ;; r = row 2ty, column 2tx0 of channel co + c's plane
              (local.set $r
                (i32.add (local.get $src)
                  (i32.add
                    (i32.mul
                      (i32.add (i32.mul (local.get $img) (local.get $cp)) (i32.add (local.get $co) (local.get $c)))
                      (local.get $plane))
                    (i32.add (i32.mul (i32.shl (local.get $ty) (i32.const 1)) (local.get $rowBytes))
                      (i32.shl (local.get $tx0) (i32.const 3))))))
              (local.set $w (i32.add (local.get $scratch) (i32.shl (local.get $c) (i32.const 4))))
              (local.set $v0 (v128.load (local.get $r)))
              (local.set $v1 (v128.load offset=16 (local.get $r)))
              (local.set $y00 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1)))
              (local.set $y01 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1)))
              (local.set $v0 (v128.load (i32.add (local.get $r) (local.get $rowBytes))))
              (local.set $v1 (v128.load offset=16 (i32.add (local.get $r) (local.get $rowBytes))))
              (local.set $y10 (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $v0) (local.get $v1)))
              (local.set $y11 (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $v0) (local.get $v1)))
              (local.set $q10 (f32x4.add (local.get $y00) (local.get $y10)))
              (local.set $q11 (f32x4.add (local.get $y01) (local.get $y11)))
              (local.set $q20 (f32x4.sub (local.get $y00) (local.get $y10)))
              (local.set $q21 (f32x4.sub (local.get $y01) (local.get $y11)))
              (local.set $q30 (f32x4.neg (local.get $y10)))
              (local.set $q31 (f32x4.neg (local.get $y11)))
              (v128.store offset=0 (local.get $w) (local.get $y00))
              (v128.store offset=64 (local.get $w) (f32x4.add (local.get $y00) (local.get $y01)))
              (v128.store offset=128 (local.get $w) (f32x4.sub (local.get $y00) (local.get $y01)))
              (v128.store offset=192 (local.get $w) (f32x4.neg (local.get $y01)))
              (v128.store offset=256 (local.get $w) (local.get $q10))
              (v128.store offset=320 (local.get $w) (f32x4.add (local.get $q10) (local.get $q11)))
              (v128.store offset=384 (local.get $w) (f32x4.sub (local.get $q10) (local.get $q11)))
              (v128.store offset=448 (local.get $w) (f32x4.neg (local.get $q11)))
              (v128.store offset=512 (local.get $w) (local.get $q20))
              (v128.store offset=576 (local.get $w) (f32x4.add (local.get $q20) (local.get $q21)))
              (v128.store offset=640 (local.get $w) (f32x4.sub (local.get $q20) (local.get $q21)))
              (v128.store offset=704 (local.get $w) (f32x4.neg (local.get $q21)))
              (v128.store offset=768 (local.get $w) (local.get $q30))
              (v128.store offset=832 (local.get $w) (f32x4.add (local.get $q30) (local.get $q31)))
              (v128.store offset=896 (local.get $w) (f32x4.sub (local.get $q30) (local.get $q31)))
              (v128.store offset=960 (local.get $w) (f32x4.neg (local.get $q31)))
              (local.set $c (i32.add (local.get $c) (i32.const 1)))
              (br_if $cloop (i32.lt_u (local.get $c) (i32.const 4))))
            ;; o = tile t's row of channel co's panel, at ξ = 0
            (local.set $o
              (i32.add (local.get $dst)
                (i32.add (i32.mul (i32.shr_u (local.get $co) (i32.const 3)) (local.get $panel))
                  (i32.add (i32.shl (local.get $t) (i32.const 5))
                    (i32.shl (i32.and (local.get $co) (i32.const 7)) (i32.const 2))))))
              ;; per ξ: the four channels' vectors (lanes = tiles) transposed to four tiles' vectors
              ;; (lanes = channels), each stored at its tile's row of the panel
              (local.set $w (local.get $scratch))
              (local.set $d (local.get $o))
              (local.set $e (i32.add (local.get $scratch) (i32.const 1024)))
              (loop $xiloop
                (local.set $v0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23
                  (v128.load (local.get $w)) (v128.load offset=16 (local.get $w))))
                (local.set $v1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31
                  (v128.load (local.get $w)) (v128.load offset=16 (local.get $w))))
                (local.set $y00 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23
                  (v128.load offset=32 (local.get $w)) (v128.load offset=48 (local.get $w))))
                (local.set $y01 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31
                  (v128.load offset=32 (local.get $w)) (v128.load offset=48 (local.get $w))))
                (v128.store (local.get $d)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v0) (local.get $y00)))
                (v128.store offset=32 (local.get $d)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $v0) (local.get $y00)))
                (v128.store offset=64 (local.get $d)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $v1) (local.get $y01)))
                (v128.store offset=96 (local.get $d)
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $v1) (local.get $y01)))
                (local.set $d (i32.add (local.get $d) (local.get $xi)))
                (local.set $w (i32.add (local.get $w) (i32.const 64)))
                (br_if $xiloop (i32.lt_u (local.get $w) (local.get $e))))
            (local.set $co (i32.add (local.get $co) (i32.const 4)))
            (br_if $coloop (i32.lt_u (local.get $co) (local.get $cp))))
          (local.set $tx (i32.add (local.get $tx) (i32.const 4)))
          (br_if $xloop (i32.lt_u (local.get $tx) (local.get $tw))))
        (local.set $ty (i32.add (local.get $ty) (i32.const 1)))
        (br $yloop)))
      (local.set $img (i32.add (local.get $img) (i32.const 1)))
      (br $nloop))))

  ;; σ(x) = 1/(1 + e^(−x)) of four floats. e^t (t = −x) as Cephes' expf: t clamped to
  ;; [−87.3, 88.3], n = round(t·log₂e), r = t − n·ln2 (ln2 in two parts, so r is exact),
  ;; e^r = 1 + r + r²·P(r) with P of degree 5 (relative error ~1e-7 on |r| ≤ ln2/2), and 2ⁿ = the
  ;; float with exponent bits n + 127. The rounding is j = t·log₂e + 1.5·2²³, whose float addition
  ;; rounds to an integer and leaves n + 0x4B400000 in j's bits.
  (func $sigm4 (param $x v128) (result v128)
    (local $t v128) (local $n v128) (local $r v128) (local $q v128) (local $j v128)
    (local.set $t
      (f32x4.min (f32x4.splat (f32.const 88.3))
        (f32x4.max (f32x4.splat (f32.const -87.3))
          (f32x4.neg (local.get $x)))))
    (local.set $j
      (f32x4.add (f32x4.mul (local.get $t) (f32x4.splat (f32.const 1.44269504088896341)))
        (f32x4.splat (f32.const 12582912))))
    (local.set $n (f32x4.sub (local.get $j) (f32x4.splat (f32.const 12582912))))
    (local.set $r
      (f32x4.sub
        (f32x4.sub (local.get $t) (f32x4.mul (local.get $n) (f32x4.splat (f32.const 0.693359375))))
        (f32x4.mul (local.get $n) (f32x4.splat (f32.const -2.12194440e-4)))))
    (local.set $q (f32x4.splat (f32.const 1.9875691500e-4)))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (f32x4.splat (f32.const 1.3981999507e-3))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (f32x4.splat (f32.const 8.3334519073e-3))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (f32x4.splat (f32.const 4.1665795894e-2))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (f32x4.splat (f32.const 1.6666665459e-1))))
    (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (f32x4.splat (f32.const 5.0000001201e-1))))
    (local.set $q
      (f32x4.add
        (f32x4.add (f32x4.mul (local.get $q) (f32x4.mul (local.get $r) (local.get $r))) (local.get $r))
        (f32x4.splat (f32.const 1))))
    (local.set $q
      (f32x4.mul (local.get $q)
        (i32x4.shl (i32x4.add (local.get $j) (i32x4.splat (i32.const -1262485377)))
          (i32.const 23))))
    (f32x4.div (f32x4.splat (f32.const 1)) (f32x4.add (f32x4.splat (f32.const 1)) (local.get $q))))

  ;; σ in place over the floats [p, end) (byte addresses, end − p a multiple of 32; two vectors an
  ;; iteration, independent, so their latencies overlap).
  (func (export "sigmoid") (param $p i32) (param $end i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (v128.store offset=0 (local.get $p) (call $sigm4 (v128.load offset=0 (local.get $p))))
        (v128.store offset=16 (local.get $p) (call $sigm4 (v128.load offset=16 (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 32)))
        (br $next))))

  ;; y = x·σ(x) in place over the floats at byte addresses [p, end), end − p a multiple of 16.
  (func (export "silu") (param $p i32) (param $end i32)
    (local $v v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (v128.store (local.get $p) (f32x4.mul (local.get $v) (call $sigm4 (local.get $v))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; dst = a ∘ b over n floats, ∘ = + − × ÷ for op 0 1 2 3 (binary-f32.ts); a at pa and b at pb
  ;; advance by a float a float, or, with sa or sb 0, stay on one float that every element takes
  ;; (a scalar operand). dst may be pa or pb. float32 arithmetic rounds as JavaScript's float64
  ;; arithmetic rounded to float32 does for these four operations, so the results are the same bits.
  (func (export "binary") (param $op i32) (param $pa i32) (param $sa i32) (param $pb i32)
    (param $sb i32) (param $dst i32) (param $n i32)
    (local $k i32) (local $vend i32) (local $va v128) (local $vb v128) (local $r v128)
    (local $x f32) (local $y f32) (local $da i32) (local $db i32)
    (local.set $da (i32.mul (local.get $sa) (i32.const 16)))
    (local.set $db (i32.mul (local.get $sb) (i32.const 16)))
    (local.set $vend (i32.and (local.get $n) (i32.const -4)))
    (block $vdone
      (loop $vloop
        (br_if $vdone (i32.ge_u (local.get $k) (local.get $vend)))
        (local.set $va
          (if (result v128) (local.get $sa)
            (then (v128.load (local.get $pa)))
            (else (v128.load32_splat (local.get $pa)))))
        (local.set $vb
          (if (result v128) (local.get $sb)
            (then (v128.load (local.get $pb)))
            (else (v128.load32_splat (local.get $pb)))))
        (block $set
          (block $div
            (block $mul
              (block $sub
                (block $add
                  (br_table $add $sub $mul $div (local.get $op)))
                (local.set $r (f32x4.add (local.get $va) (local.get $vb)))
                (br $set))
              (local.set $r (f32x4.sub (local.get $va) (local.get $vb)))
              (br $set))
            (local.set $r (f32x4.mul (local.get $va) (local.get $vb)))
            (br $set))
          (local.set $r (f32x4.div (local.get $va) (local.get $vb))))
        (v128.store (local.get $dst) (local.get $r))
        (local.set $pa (i32.add (local.get $pa) (local.get $da)))
        (local.set $pb (i32.add (local.get $pb) (local.get $db)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $vloop)))
    (local.set $da (i32.mul (local.get $sa) (i32.const 4)))
    (local.set $db (i32.mul (local.get $sb) (i32.const 4)))
    (block $tdone
      (loop $tloop
        (br_if $tdone (i32.ge_u (local.get $k) (local.get $n)))
        (local.set $x (f32.load (local.get $pa)))
        (local.set $y (f32.load (local.get $pb)))
        (f32.store (local.get $dst)
          (if (result f32) (i32.eq (local.get $op) (i32.const 0))
            (then (f32.add (local.get $x) (local.get $y)))
            (else
              (if (result f32) (i32.eq (local.get $op) (i32.const 1))
                (then (f32.sub (local.get $x) (local.get $y)))
                (else
                  (if (result f32) (i32.eq (local.get $op) (i32.const 2))
                    (then (f32.mul (local.get $x) (local.get $y)))
                    (else (f32.div (local.get $x) (local.get $y)))))))))
        (local.set $pa (i32.add (local.get $pa) (local.get $da)))
        (local.set $pb (i32.add (local.get $pb) (local.get $db)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $tloop))))

  ;; Group norm's per-element work (norm-f32.ts), in float64 lanes as the JavaScript loops it replaces
  ;; compute it: float32 inputs promoted, every product and sum in float64, each result rounded once
  ;; to float32 when stored. A run is n floats from byte address p (any n: four at a time, the
  ;; rest one by one).

  ;; The upper two floats of v as float64 lanes.
  (func $promote_high (param $v v128) (result v128)
    (f64x2.promote_low_f32x4
      (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))

  ;; Σ (x − c)^e over a run, e = 1 or 2, in float64.
  (func (export "sum_pow") (param $p i32) (param $n i32) (param $c f64) (param $e i32) (result f64)
    (local $end i32) (local $vend i32) (local $v v128) (local $lo v128) (local $hi v128)
    (local $s0 v128) (local $s1 v128) (local $vc v128) (local $t f64) (local $d f64)
    (local.set $vc (f64x2.splat (local.get $c)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $vend
      (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (loop $vloop
        (br_if $vdone (i32.ge_u (local.get $p) (local.get $vend)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $lo (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (local.get $vc)))
        (local.set $hi (f64x2.sub (call $promote_high (local.get $v)) (local.get $vc)))
        (if (i32.eq (local.get $e) (i32.const 2))
          (then
            (local.set $lo (f64x2.mul (local.get $lo) (local.get $lo)))
            (local.set $hi (f64x2.mul (local.get $hi) (local.get $hi)))))
        (local.set $s0 (f64x2.add (local.get $s0) (local.get $lo)))
        (local.set $s1 (f64x2.add (local.get $s1) (local.get $hi)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $vloop)))
    (local.set $s0 (f64x2.add (local.get $s0) (local.get $s1)))
    (local.set $t
      (f64.add (f64x2.extract_lane 0 (local.get $s0)) (f64x2.extract_lane 1 (local.get $s0))))
    (block $tdone
      (loop $tloop
        (br_if $tdone (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $d (f64.sub (f64.promote_f32 (f32.load (local.get $p))) (local.get $c)))
        (if (i32.eq (local.get $e) (i32.const 2))
          (then (local.set $d (f64.mul (local.get $d) (local.get $d)))))
        (local.set $t (f64.add (local.get $t) (local.get $d)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $tloop)))
    (local.get $t))

  ;; dst = x·a + y·b + c over a run (x at px, y at py; dst may be either), with b = 0 and py
  ;; unread when py is −1: the normalisation z = x·a + c and group norm's input gradient
  ;; dx = dz·(r·w) + x·β + γ.
  (func (export "lincomb") (param $px i32) (param $py i32) (param $dst i32) (param $n i32)
    (param $a f64) (param $b f64) (param $c f64)
    (local $vend i32) (local $v v128) (local $w v128) (local $va v128) (local $vb v128) (local $vc v128)
    (local $lo v128) (local $hi v128) (local $k i32) (local $t f64)
    (local.set $va (f64x2.splat (local.get $a)))
    (local.set $vb (f64x2.splat (local.get $b)))
    (local.set $vc (f64x2.splat (local.get $c)))
    (local.set $vend (i32.and (local.get $n) (i32.const -4)))
    (block $vdone
      (loop $vloop
        (br_if $vdone (i32.ge_u (local.get $k) (local.get $vend)))
        (local.set $v (v128.load (local.get $px)))
        (local.set $lo (f64x2.mul (f64x2.promote_low_f32x4 (local.get $v)) (local.get $va)))
        (local.set $hi (f64x2.mul (call $promote_high (local.get $v)) (local.get $va)))
        (if (i32.ne (local.get $py) (i32.const -1))
          (then
            (local.set $w (v128.load (local.get $py)))
            (local.set $lo
              (f64x2.add (local.get $lo)
                (f64x2.mul (f64x2.promote_low_f32x4 (local.get $w)) (local.get $vb))))
            (local.set $hi
              (f64x2.add (local.get $hi) (f64x2.mul (call $promote_high (local.get $w)) (local.get $vb))))
            (local.set $py (i32.add (local.get $py) (i32.const 16)))))
        (v128.store (local.get $dst)
          (call $demote2
            (f64x2.add (local.get $lo) (local.get $vc)) (f64x2.add (local.get $hi) (local.get $vc))))
        (local.set $px (i32.add (local.get $px) (i32.const 16)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $vloop)))
    (block $tdone
      (loop $tloop
        (br_if $tdone (i32.ge_u (local.get $k) (local.get $n)))
        (local.set $t (f64.mul (f64.promote_f32 (f32.load (local.get $px))) (local.get $a)))
        (if (i32.ne (local.get $py) (i32.const -1))
          (then
            (local.set $t
              (f64.add (local.get $t)
                (f64.mul (f64.promote_f32 (f32.load (local.get $py))) (local.get $b))))
            (local.set $py (i32.add (local.get $py) (i32.const 4)))))
        (f32.store (local.get $dst) (f32.demote_f64 (f64.add (local.get $t) (local.get $c))))
        (local.set $px (i32.add (local.get $px) (i32.const 4)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $tloop))))

  ;; Σ d and Σ d·(x − μ) over a run (d at pd, x at px), stored as two float64 at out.
  (func (export "sum_dot") (param $pd i32) (param $px i32) (param $n i32) (param $mu f64)
    (param $out i32)
    (local $vend i32) (local $k i32) (local $v v128) (local $w v128) (local $vmu v128)
    (local $dlo v128) (local $dhi v128) (local $s0 v128) (local $s1 v128) (local $q0 v128)
    (local $q1 v128) (local $d f64) (local $sd f64) (local $sdx f64)
    (local.set $vmu (f64x2.splat (local.get $mu)))
    (local.set $vend (i32.and (local.get $n) (i32.const -4)))
    (block $vdone
      (loop $vloop
        (br_if $vdone (i32.ge_u (local.get $k) (local.get $vend)))
        (local.set $v (v128.load (local.get $pd)))
        (local.set $w (v128.load (local.get $px)))
        (local.set $dlo (f64x2.promote_low_f32x4 (local.get $v)))
        (local.set $dhi (call $promote_high (local.get $v)))
        (local.set $s0 (f64x2.add (local.get $s0) (local.get $dlo)))
        (local.set $s1 (f64x2.add (local.get $s1) (local.get $dhi)))
        (local.set $q0
          (f64x2.add (local.get $q0)
            (f64x2.mul (local.get $dlo)
              (f64x2.sub (f64x2.promote_low_f32x4 (local.get $w)) (local.get $vmu)))))
        (local.set $q1
          (f64x2.add (local.get $q1)
            (f64x2.mul (local.get $dhi) (f64x2.sub (call $promote_high (local.get $w)) (local.get $vmu)))))
        (local.set $pd (i32.add (local.get $pd) (i32.const 16)))
        (local.set $px (i32.add (local.get $px) (i32.const 16)))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $vloop)))
    (local.set $s0 (f64x2.add (local.get $s0) (local.get $s1)))
    (local.set $q0 (f64x2.add (local.get $q0) (local.get $q1)))
    (local.set $sd
      (f64.add (f64x2.extract_lane 0 (local.get $s0)) (f64x2.extract_lane 1 (local.get $s0))))
    (local.set $sdx
      (f64.add (f64x2.extract_lane 0 (local.get $q0)) (f64x2.extract_lane 1 (local.get $q0))))
    (block $tdone
      (loop $tloop
        (br_if $tdone (i32.ge_u (local.get $k) (local.get $n)))
        (local.set $d (f64.promote_f32 (f32.load (local.get $pd))))
        (local.set $sd (f64.add (local.get $sd) (local.get $d)))
        (local.set $sdx
          (f64.add (local.get $sdx)
            (f64.mul (local.get $d)
              (f64.sub (f64.promote_f32 (f32.load (local.get $px))) (local.get $mu)))))
        (local.set $pd (i32.add (local.get $pd) (i32.const 4)))
        (local.set $px (i32.add (local.get $px) (i32.const 4)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $tloop)))
    (f64.store (local.get $out) (local.get $sd))
    (f64.store offset=8 (local.get $out) (local.get $sdx)))

  ;; The SiLU's gradient through z = x̂·w + b: dz = dy·σ(z)·(1 + z·(1 − σ(z))), over z in place
  ;; (z at pz, dy at pdy; bytes a multiple of 16), σ as `sigmoid` computes it.
  (func (export "silu_grad") (param $pz i32) (param $pdy i32) (param $bytes i32)
    (local $end i32) (local $z v128) (local $sg v128)
    (local.set $end (i32.add (local.get $pz) (local.get $bytes)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $pz) (local.get $end)))
        (local.set $z (v128.load (local.get $pz)))
        (local.set $sg (call $sigm4 (local.get $z)))
        (v128.store (local.get $pz)
          (f32x4.mul (f32x4.mul (v128.load (local.get $pdy)) (local.get $sg))
            (f32x4.add (f32x4.splat (f32.const 1))
              (f32x4.mul (local.get $z) (f32x4.sub (f32x4.splat (f32.const 1)) (local.get $sg))))))
        (local.set $pz (i32.add (local.get $pz) (i32.const 16)))
        (local.set $pdy (i32.add (local.get $pdy) (i32.const 16)))
        (br $next))))

  ;; GELU in float64 lanes, for float32 storages. Φ(x) from the erfc fit of Numerical Recipes
  ;; §6.2 (fractional error < 1.2e-7 for every z ≥ 0):
  ;;   erfc z ≈ t · exp(−z² + P(t)),  t = 1/(1 + z/2),  P of degree 9,
  ;; with z = |x|/√2 and h = erfc(z)/2 = Φ(−|x|), so Φ(x) = h for x ≤ 0 and 1 − h otherwise (the
  ;; small side is never computed by cancellation). In f64, z² of a float32 x is exact and the
  ;; exponential's error (~1e-9 here) is far below float32's, so the result keeps the fit's 1.2e-7.
  ;; e^u as 2ⁿ·e^r: n = round(u·log₂e) by adding 1.5·2⁵² (n is then the low bits of the sum), r =
  ;; u − n·ln2 with ln2 in two parts, e^r by its Taylor series to r⁸/8! (|r| ≤ ln2/2: 5e-9), and
  ;; 2ⁿ the double with exponent bits n + 1023. u is clamped to [−700, 700] (below, 0).
  (func $exp64 (param $u0 v128) (result v128)
    (local $u v128) (local $j v128) (local $n v128) (local $r v128) (local $q v128)
    (local.set $u
      (f64x2.min (f64x2.splat (f64.const 700)) (f64x2.max (f64x2.splat (f64.const -700)) (local.get $u0))))
    (local.set $j
      (f64x2.add (f64x2.mul (local.get $u) (f64x2.splat (f64.const 1.4426950408889634)))
        (f64x2.splat (f64.const 6755399441055744))))
    (local.set $n (f64x2.sub (local.get $j) (f64x2.splat (f64.const 6755399441055744))))
    (local.set $r
      (f64x2.sub
        (f64x2.sub (local.get $u) (f64x2.mul (local.get $n) (f64x2.splat (f64.const 0.6931471803691238))))
        (f64x2.mul (local.get $n) (f64x2.splat (f64.const 1.9082149292705877e-10)))))
    (local.set $q (f64x2.splat (f64.const 2.48015873015873e-5)))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 1.984126984126984e-4))))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 1.388888888888889e-3))))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 8.333333333333333e-3))))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 4.1666666666666664e-2))))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 0.16666666666666666))))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 0.5))))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 1))))
    (local.set $q (f64x2.add (f64x2.mul (local.get $q) (local.get $r)) (f64x2.splat (f64.const 1))))
    ;; j's bits are 0x4338000000000000 + n; 2ⁿ's are (n + 1023) << 52. Below −700 the result
    ;; is 0, so that e^(−∞) = 0 exactly (∞ · e^(−∞) is then NaN, as in the reference).
    (v128.bitselect (f64x2.splat (f64.const 0))
      (f64x2.mul (local.get $q)
        (i64x2.shl
          (i64x2.add (local.get $j) (i64x2.splat (i64.const -4843621399236967425)))
          (i32.const 52)))
      (f64x2.lt (local.get $u0) (f64x2.splat (f64.const -700)))))

  ;; h = Φ(−|x|) = erfc(|x|/√2)/2 over two f64 lanes.
  (func $half_erfc (param $x v128) (result v128)
    (local $z v128) (local $t v128) (local $p v128)
    (local.set $z (f64x2.mul (f64x2.abs (local.get $x)) (f64x2.splat (f64.const 0.7071067811865476))))
    (local.set $t
      (f64x2.div (f64x2.splat (f64.const 1))
        (f64x2.add (f64x2.splat (f64.const 1)) (f64x2.mul (f64x2.splat (f64.const 0.5)) (local.get $z)))))
    (local.set $p (f64x2.splat (f64.const 0.17087277)))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const -0.82215223))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const 1.48851587))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const -1.13520398))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const 0.27886807))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const -0.18628806))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const 0.09678418))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const 0.37409196))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const 1.00002368))))
    (local.set $p (f64x2.add (f64x2.mul (local.get $p) (local.get $t)) (f64x2.splat (f64.const -1.26551223))))
    (f64x2.mul (f64x2.mul (f64x2.splat (f64.const 0.5)) (local.get $t))
      (call $exp64 (f64x2.sub (local.get $p) (f64x2.mul (local.get $z) (local.get $z))))))

  ;; Φ(x) over two f64 lanes (NaN stays NaN: the comparison is false and 1 − NaN is NaN).
  (func $phi (param $x v128) (result v128)
    (local $h v128)
    (local.set $h (call $half_erfc (local.get $x)))
    (v128.bitselect (local.get $h) (f64x2.sub (f64x2.splat (f64.const 1)) (local.get $h))
      (f64x2.le (local.get $x) (f64x2.splat (f64.const 0)))))

  ;; The two f64 halves of a f32x4 back as one f32x4.
  (func $demote2 (param $lo v128) (param $hi v128) (result v128)
    (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
      (f32x4.demote_f64x2_zero (local.get $lo)) (f32x4.demote_f64x2_zero (local.get $hi))))

  ;; y = x Φ(x) in place over the floats at byte addresses [p, end), end − p a multiple of 16.
  (func (export "gelu") (param $p i32) (param $end i32)
    (local $v v128) (local $lo v128) (local $hi v128)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $v (v128.load (local.get $p)))
        (local.set $lo (f64x2.promote_low_f32x4 (local.get $v)))
        (local.set $hi
          (f64x2.promote_low_f32x4
            (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
        (v128.store (local.get $p)
          (call $demote2
            (f64x2.mul (local.get $lo) (call $phi (local.get $lo)))
            (f64x2.mul (local.get $hi) (call $phi (local.get $hi)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next))))

  ;; dx = dy · (Φ(x) + x φ(x)), φ(x) = e^(−x²/2)/√(2π), written over dy: x at byte addresses
  ;; [px, px + bytes), dy at [pdy, pdy + bytes), bytes a multiple of 16.
  (func $dgelu (param $x v128) (param $dy v128) (result v128)
    (f64x2.mul (local.get $dy)
      (f64x2.add (call $phi (local.get $x))
        (f64x2.mul (f64x2.mul (local.get $x) (f64x2.splat (f64.const 0.3989422804014327)))
          (call $exp64
            (f64x2.mul (f64x2.splat (f64.const -0.5)) (f64x2.mul (local.get $x) (local.get $x))))))))

  (func (export "gelu_grad") (param $px i32) (param $pdy i32) (param $bytes i32)
    (local $end i32) (local $x v128) (local $dy v128)
    (local.set $end (i32.add (local.get $px) (local.get $bytes)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $px) (local.get $end)))
        (local.set $x (v128.load (local.get $px)))
        (local.set $dy (v128.load (local.get $pdy)))
        (v128.store (local.get $pdy)
          (call $demote2
            (call $dgelu (f64x2.promote_low_f32x4 (local.get $x))
              (f64x2.promote_low_f32x4 (local.get $dy)))
            (call $dgelu
              (f64x2.promote_low_f32x4
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x)))
              (f64x2.promote_low_f32x4
                (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $dy) (local.get $dy))))))
        (local.set $px (i32.add (local.get $px) (i32.const 16)))
        (local.set $pdy (i32.add (local.get $pdy) (i32.const 16)))
        (br $next))))
)
