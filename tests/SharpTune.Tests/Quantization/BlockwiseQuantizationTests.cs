using System.Text;
using SharpTune.IO;
using SharpTune.Quantization;
using SharpTune.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Quantization;

public class BlockwiseQuantizationTests
{
    [Fact]
    public void Nf4CodeBookEqualsThePublishedValues()
    {
        // QLoRA (Dettmers et al. 2023), appendix E, as printed in bitsandbytes' get_4bit_type("nf4").
        double[] published =
        [
            -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
            -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
            0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
        ];
        Assert.Equal(published.Select(v => (float)v), QuantCodebooks.Nf4);
    }

    [Fact]
    public void Fp4CodeBookIsBitsandbytesTable()
    {
        // bitsandbytes' _FP4_QUANT_TABLE (4 decimals): code = sign bit + magnitude index.
        double[] table = [0, 0.0052, 0.6667, 1, 0.3333, 0.5, 0.1667, 0.25, 0, -0.0052, -0.6667, -1, -0.3333, -0.5, -0.1667, -0.25];
        for (var i = 0; i < 16; i++)
            Assert.Equal(table[i], QuantCodebooks.Fp4[i], 4);
        Assert.True(float.IsNegative(QuantCodebooks.Fp4[8]));
    }

    [Fact]
    public void DynamicMapsHaveBitsandbytesShape()
    {
        var signed = QuantCodebooks.Dynamic8Bit(signed: true);
        var unsigned = QuantCodebooks.Dynamic8Bit(signed: false);
        Assert.Equal(256, signed.Length);
        Assert.Equal(256, unsigned.Length);
        Assert.Equal(signed.Order(), signed);
        Assert.Equal(1f, signed[^1]);
        Assert.Equal(1f, unsigned[^1]);
        Assert.Contains(0f, signed);
        Assert.True(unsigned.All(v => v >= 0));
        // Seven decades: the smallest non-zero magnitude is 1e-6 * (0.1 + 1) / 2 (the first fraction mean).
        Assert.Equal(0.55e-6, signed.Where(v => v > 0).Min(), 9);
        // Signed: 127 negatives mirroring 127 positives below 1.
        Assert.Equal(signed.Where(v => v > 0 && v < 1).Order(), signed.Where(v => v < 0).Select(v => -v).Order());
    }

    [Theory]
    [InlineData(FourBitType.Nf4, 96, 130)]
    [InlineData(FourBitType.Fp4, 96, 130)]
    [InlineData(FourBitType.Nf4, 7, 9)] // 63 values: one partial block, odd count
    public void FourBitRoundTripPicksTheNearestCodeOfEveryBlock(FourBitType type, int rows, int cols)
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var weight = randn(rows, cols) * 0.05;
        var (packed, absmax) = Blockwise.Quantize4Bit(weight, type);
        var n = rows * cols;
        Assert.Equal(new long[] { (n + 1) / 2, 1 }, packed.shape);
        Assert.Equal(ScalarType.Byte, packed.dtype);
        Assert.Equal((n + 63) / 64, absmax.shape[0]);
        var restored = Blockwise.Dequantize4Bit(packed, absmax, type, 64, [rows, cols], ScalarType.Float32);

        var w = weight.data<float>().ToArray();
        var r = restored.data<float>().ToArray();
        var scales = absmax.data<float>().ToArray();
        var codes = QuantCodebooks.FourBit(type).Distinct().Order().ToArray();
        for (var i = 0; i < n; i++)
        {
            var scale = scales[i / 64];
            var scaled = w[i] / scale;
            var nearest = codes.MinBy(c => Math.Abs(c - scaled));
            // Error within half the spacing of the two codes around the value (the NF4/FP4 code spacing).
            var above = codes.FirstOrDefault(c => c >= scaled, 1f);
            var below = codes.LastOrDefault(c => c <= scaled, -1f);
            Assert.True(Math.Abs(r[i] - w[i]) <= (above - below) / 2 * scale + 1e-6, $"element {i}: {w[i]} -> {r[i]}");
            Assert.Equal(nearest * scale, r[i], 5);
        }
        // The block maximum itself is exact (code ±1).
        Assert.Equal(w.Take(64).Max(Math.Abs), r.Take(64).Max(Math.Abs), 6);
    }

    /// <summary>The thresholds of bitsandbytes' CUDA NF4 quantizer (<c>dQuantizeNF4</c> in csrc/kernels.cu), a decision
    /// tree returning the code of the first threshold x is not above; sorted ascending.</summary>
    private static readonly float[] Nf4KernelThresholds =
    [
        -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f, -0.23460740596055984f,
        -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f, 0.2035212516784668f,
        0.2920137718319893f, 0.3893125355243683f, 0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
    ];

    [Fact]
    public void Nf4CodesMatchBitsandbytesKernelAtEveryThreshold()
    {
        using var scope = NewDisposeScope();
        // Absmax 1 makes the scaled values the inputs themselves; each threshold, and the floats just below and above it.
        var values = Nf4KernelThresholds.SelectMany(t => new[] { MathF.BitDecrement(t), t, MathF.BitIncrement(t) })
            .Prepend(1f).Append(-1f).Append(0f).ToArray();
        var (packed, absmax) = Blockwise.Quantize4Bit(tensor(values), FourBitType.Nf4);
        Assert.Equal(1f, absmax[0].item<float>());
        var bytes = packed.data<byte>().ToArray();
        for (var i = 0; i < values.Length; i++)
        {
            var code = i % 2 == 0 ? bytes[i / 2] >> 4 : bytes[i / 2] & 15; // first value in the high nibble
            var expected = Nf4KernelThresholds.Count(t => values[i] > t); // the tree's `if (x > t)` branches
            Assert.True(expected == code, $"{values[i]:R} (bits {BitConverter.SingleToUInt32Bits(values[i]):X}): code {code}, bitsandbytes {expected}");
        }
    }

    [Fact]
    public void Fp4CodesMatchBitsandbytesKernelAtEveryThreshold()
    {
        using var scope = NewDisposeScope();
        // dQuantizeFP4: sign bit for x < 0, then |x| against these thresholds (rounded midpoints, not float32 ones).
        float[] thresholds = [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];
        int[] magnitudeCode = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];
        var values = thresholds.SelectMany(t => new[] { MathF.BitDecrement(t), t, MathF.BitIncrement(t) })
            .SelectMany(v => new[] { v, -v }).Prepend(1f).Append(-1f).Append(0f).Append(-1e-9f).ToArray();
        var (packed, absmax) = Blockwise.Quantize4Bit(tensor(values), FourBitType.Fp4);
        Assert.Equal(1f, absmax[0].item<float>());
        var bytes = packed.data<byte>().ToArray();
        for (var i = 0; i < values.Length; i++)
        {
            var code = i % 2 == 0 ? bytes[i / 2] >> 4 : bytes[i / 2] & 15;
            var expected = magnitudeCode[thresholds.Count(t => MathF.Abs(values[i]) > t)] + (values[i] < 0 ? 8 : 0);
            Assert.True(expected == code, $"{values[i]:R}: code {code}, bitsandbytes {expected}");
        }
    }

    [Fact]
    public void Nf4BlockComputedByHand()
    {
        using var scope = NewDisposeScope();
        // absmax 2; scaled 0.25, -1, 0.1, 0.05, 0.5 -> codes 10 (0.2035 < x <= 0.2920), 0, 8 (0.0398 < x <= 0.1203), 8,
        // 12 (0.3893 < x <= 0.5017), and the odd count's padding 0 -> code 7 (NF4's zero) in the last low nibble.
        var (packed, absmax) = Blockwise.Quantize4Bit(tensor(new[] { 0.5f, -2f, 0.2f, 0.1f, 1f }), FourBitType.Nf4);
        Assert.Equal(new byte[] { 0xA0, 0x88, 0xC7 }, packed.data<byte>().ToArray());
        Assert.Equal(2f, absmax.item<float>());
        var restored = Blockwise.Dequantize4Bit(packed, absmax, FourBitType.Nf4, 64, [5], ScalarType.Float32);
        var nf4 = QuantCodebooks.Nf4;
        Assert.Equal(new[] { nf4[10] * 2f, -2f, nf4[8] * 2f, nf4[8] * 2f, nf4[12] * 2f }, restored.data<float>().ToArray());
    }

    [Theory]
    [InlineData(FourBitType.Nf4, 64, 4096, ScalarType.Float32)]
    [InlineData(FourBitType.Fp4, 64, 4096, ScalarType.Float32)]
    [InlineData(FourBitType.Nf4, 64, 4093, ScalarType.BFloat16)] // odd count, partial last block
    [InlineData(FourBitType.Nf4, 128, 1000, ScalarType.Float16)]
    public void Dequantize4BitIsCodeTimesAbsmaxInFloat32ThenCast(FourBitType type, int blockSize, int n, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        manual_seed(8);
        var packed = randint(0, 256, [(n + 1) / 2, 1], ScalarType.Int32).to(ScalarType.Byte);
        var absmax = rand((n + blockSize - 1) / blockSize) * 3;
        var restored = Blockwise.Dequantize4Bit(packed, absmax, type, blockSize, [n], dtype);
        var bytes = packed.data<byte>().ToArray();
        var scales = absmax.data<float>().ToArray();
        var codes = QuantCodebooks.FourBit(type);
        var expected = Enumerable.Range(0, n).Select(i => codes[i % 2 == 0 ? bytes[i / 2] >> 4 : bytes[i / 2] & 15] * scales[i / blockSize]).ToArray();
        Assert.Equal(dtype, restored.dtype);
        Assert.True(Same(tensor(expected).to(dtype), restored));
    }

    [Fact]
    public void LoadingRejectsAQuantMapThatIsNotTheCodeBook()
    {
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var scope = NewDisposeScope();
            var model = nn.Sequential(("fc", nn.Linear(64, 8)));
            Quantizer.Quantize(model, new QuantizationOptions());
            var tensors = model.state_dict().ToDictionary(p => p.Key, p => p.Value);
            tensors["fc.weight.quant_map"] = tensors["fc.weight.quant_map"] * 0.5;
            SafeTensorsWriter.Save(Path.Combine(dir, Checkpoint.SingleFile), tensors.ToList());
            using var checkpoint = Checkpoint.Open(dir);
            var error = Assert.Throws<InvalidDataException>(() => Linear4Bit.Load(checkpoint, "fc", ScalarType.Float32));
            Assert.Contains("fc.weight.quant_map", error.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void DoubleQuantizationKeepsAbsmaxWithinTheDynamicMapSpacing()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var weight = randn(512, 256) * 0.02;
        var options = new QuantizationOptions { DoubleQuant = true };
        using var plain = Linear4Bit.Quantize(weight, null, options with { DoubleQuant = false });
        using var nested = Linear4Bit.Quantize(weight, null, options);
        var named = nested.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        Assert.Equal(ScalarType.Byte, named["weight.absmax"].dtype);
        Assert.Equal(new long[] { 2048 }, named["weight.absmax"].shape);
        Assert.Equal(new long[] { 8 }, named["weight.nested_absmax"].shape);
        Assert.Equal(new long[] { 256 }, named["weight.nested_quant_map"].shape);

        var exact = plain.DequantizeWeight(ScalarType.Float32);
        var approx = nested.DequantizeWeight(ScalarType.Float32);
        // The absmax constants lose < 1% of their spread; the weights move by a fraction of one NF4 step.
        var maxStep = (1 - 0.7229568362236023) * weight.abs().max().item<float>();
        Assert.True((exact - approx).abs().max().item<float>() < 0.02 * maxStep * 4);
        Assert.True((approx - weight).abs().max().item<float>() <= maxStep / 2 * 1.02);
    }

    [Fact]
    public void Int8RowsRoundTripWithinHalfAStep()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var weight = randn(64, 100);
        var (codes, rowAbsmax) = Blockwise.QuantizeInt8Rows(weight);
        Assert.Equal(ScalarType.Int8, codes.dtype);
        var restored = Blockwise.DequantizeInt8Rows(codes, rowAbsmax, ScalarType.Float32);
        var step = (rowAbsmax / 127).unsqueeze(1);
        Assert.True(((restored - weight).abs() <= step / 2 + 1e-6).all().item<bool>());
    }

    [Fact]
    public void QuantizedLayersStoreAtMostFourAndAHalfBitsPerParameter()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var model = nn.Sequential(("up", nn.Linear(1024, 1024)), ("down", nn.Linear(1024, 1024, hasBias: false)));
        var doubleModel = nn.Sequential(("up", nn.Linear(1024, 1024)), ("down", nn.Linear(1024, 1024, hasBias: false)));
        Quantizer.Quantize(model, new QuantizationOptions());
        Quantizer.Quantize(doubleModel, new QuantizationOptions { DoubleQuant = true });
        var plain = Quantizer.Footprint(model);
        var nested = Quantizer.Footprint(doubleModel);
        Assert.Equal(2, plain.Layers);
        Assert.Equal(2L * 1024 * 1024, plain.Parameters);
        Assert.Equal(0.5625, plain.BytesPerParameter, 10); // 4 bits + one float32 per 64
        Assert.True(nested.BytesPerParameter <= 0.52, $"{nested.BytesPerParameter}");
        Assert.Equal(0.5 + 1.0 / 64 + (4.0 * 64 + 4) / (1024 * 1024), nested.BytesPerParameter, 10);
    }

    [Theory]
    [InlineData(4, ScalarType.Float32)]
    [InlineData(4, ScalarType.BFloat16)]
    [InlineData(8, ScalarType.Float32)]
    public void QuantizedLinearComputesWithTheDequantizedWeight(int bits, ScalarType compute)
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var linear = nn.Linear(64, 48);
        var options = new QuantizationOptions { Bits = bits, ComputeDType = compute, DoubleQuant = true };
        using var quantized = QuantizedLinear.FromLinear(linear, options);
        var x = randn(3, 5, 64);
        var y = quantized.forward(x);
        Assert.Equal(ScalarType.Float32, y.dtype);
        Assert.Equal(new long[] { 3, 5, 48 }, y.shape);
        var expected = nn.functional.linear(x.to(compute), quantized.DequantizeWeight(compute), linear.bias!.to(compute)).to(ScalarType.Float32);
        Assert.True((y - expected).abs().max().item<float>() < 1e-5);
        var full = linear.forward(x);
        var relative = ((y - full).norm() / full.norm()).item<float>();
        Assert.True(relative < (bits == 4 ? 0.12 : 0.02), $"relative error {relative}");
    }

    [Fact]
    public void CastingAModelKeepsQuantizationConstantsInFloat32()
    {
        using var scope = NewDisposeScope();
        var model = nn.Sequential(("proj", nn.Linear(64, 64)));
        Quantizer.Quantize(model, new QuantizationOptions { DoubleQuant = true });
        model.to(ScalarType.BFloat16);
        var buffers = model.named_buffers().ToDictionary(b => b.name, b => b.buffer.dtype);
        Assert.Equal(ScalarType.Byte, buffers["proj.weight"]);
        Assert.Equal(ScalarType.Float32, buffers["proj.weight.nested_absmax"]);
        Assert.Equal(ScalarType.Float32, buffers["proj.weight.quant_map"]);
        Assert.Equal(ScalarType.BFloat16, model.named_parameters().Single(p => p.name == "proj.bias").parameter.dtype);
    }

    [Fact]
    public void QuantStateUsesBitsandbytesKeysAndJson()
    {
        using var scope = NewDisposeScope();
        manual_seed(6);
        var model = nn.Sequential(("q_proj", nn.Linear(128, 64, hasBias: false)));
        Quantizer.Quantize(model, new QuantizationOptions { DoubleQuant = true });
        var buffers = model.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        Assert.Equal(
            ["q_proj.weight", "q_proj.weight.absmax", "q_proj.weight.nested_absmax", "q_proj.weight.nested_quant_map", "q_proj.weight.quant_map", "q_proj.weight.quant_state.bitsandbytes__nf4"],
            buffers.Keys.Order(StringComparer.Ordinal));
        var json = Encoding.UTF8.GetString(buffers["q_proj.weight.quant_state.bitsandbytes__nf4"].data<byte>().ToArray());
        Assert.Matches(
            """^\{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": \[64, 128\], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0\.0\d+\}$""",
            json);
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(4, false)]
    [InlineData(8, false)]
    public void SavedLayersLoadBackBitIdentical(int bits, bool doubleQuant)
    {
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var scope = NewDisposeScope();
            manual_seed(7);
            var model = nn.Sequential(("fc", nn.Linear(96, 80)));
            Quantizer.Quantize(model, new QuantizationOptions { Bits = bits, DoubleQuant = doubleQuant, QuantType = FourBitType.Fp4 });
            var file = Path.Combine(dir, Checkpoint.SingleFile);
            SafeTensorsWriter.Save(file, model.state_dict().ToList());
            using var checkpoint = Checkpoint.Open(dir);
            QuantizedLinear loaded = bits == 4 ? Linear4Bit.Load(checkpoint, "fc", ScalarType.Float32) : Linear8Bit.Load(checkpoint, "fc", ScalarType.Float32);
            var original = (QuantizedLinear)model.named_children().Single().module;
            Assert.True(Same(original.DequantizeWeight(ScalarType.Float32), loaded.DequantizeWeight(ScalarType.Float32)));
            var saved = model.state_dict();
            foreach (var (name, buffer) in loaded.state_dict())
                Assert.True(Same(buffer, saved["fc." + name]), name);
            loaded.Dispose();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    internal static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
