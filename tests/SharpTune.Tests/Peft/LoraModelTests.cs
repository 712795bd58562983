using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Tests.Support;
using TorchSharp.Modules;
using static SharpTune.Tests.Models.DecoderTestSupport;
using static TorchSharp.torch;

namespace SharpTune.Tests.Peft;

/// <summary>Injection, freezing, initialisation, several adapters, biases and modules_to_save, on the tiny fixtures.</summary>
public class LoraModelTests
{
    private static string Lora(string fixture, string part) => RepoPaths.Fixture("lora", fixture, part);

    private static Tensor Logits(PreTrainedModel model)
    {
        using var output = model.Forward(new ModelInputs(tensor(new long[,] { { 1, 5, 9, 200, 31, 7 } })));
        return output.Logits!.clone();
    }

    [Fact]
    public void NewAdapterIsANoOpFreezesTheBaseAndCountsLikePeft()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var model = LoadCausalLM(Lora("llama", "base"));
        var baseLogits = Logits(model);
        var total = model.named_parameters().Sum(p => p.parameter.numel());
        var peft = PeftModel.Create(model, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"] });
        // Per layer: q_proj A 8x64 + B 64x8, v_proj A 8x64 + B 32x8; 2 layers.
        Assert.Equal((3584L, total + 3584), peft.ParameterCounts());
        Assert.Equal($"trainable params: 3,584 || all params: {total + 3584:N0} || trainable%: {100.0 * 3584 / (total + 3584):F4}",
            peft.TrainableParametersSummary());
        Assert.Equal(4, peft.LoraLayers.Count());
        Assert.All(peft.LoraLayers, l => Assert.Equal(2.0, l.Layer.Scaling("default")));
        Assert.Equal(0, MaxAbsError(Logits(model), baseLogits)); // B starts at zero
        foreach (var (_, layer) in peft.LoraLayers)
        {
            var a = layer.LoraA("default").weight;
            Assert.True(a.abs().max().item<float>() <= 1 / Math.Sqrt(64)); // Kaiming-uniform(a=√5) bound 1/√fan_in
            Assert.True(a.std().item<float>() > 0.03);
            Assert.Equal(0, layer.LoraB("default").weight.abs().max().item<float>());
        }
        Assert.All(model.named_parameters(), p => Assert.Equal(p.name.Contains(".lora_"), p.parameter.requires_grad));
        Assert.Contains(model.named_parameters(), p => p.name == "model.layers.0.self_attn.q_proj.lora_A.default.weight");
        Assert.Contains(model.named_parameters(), p => p.name == "model.layers.0.self_attn.q_proj.base_layer.weight");
    }

    [Fact]
    public void RegexTargetsRankStabilisedScalingAndUnknownTargets()
    {
        using var scope = NewDisposeScope();
        using var model = LoadCausalLM(Lora("llama", "base"));
        var peft = PeftModel.Create(model, new LoraConfig { R = 16, LoraAlpha = 16, UseRslora = true, TargetModulesRegex = @".*\.layers\.1\.self_attn\.(q|k)_proj" });
        Assert.Equal(["model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.q_proj"], peft.LoraLayers.Select(l => l.Path).Order());
        Assert.All(peft.LoraLayers, l => Assert.Equal(4.0, l.Layer.Scaling("default"))); // 16 / √16
        Assert.Throws<ArgumentException>(() => peft.AddAdapter("other", new LoraConfig { TargetModules = ["no_such_proj"] }));
    }

    [Fact]
    public void SeveralAdaptersSwitchAndDelete()
    {
        using var scope = NewDisposeScope();
        var reference = LoadReference(Lora("llama", "reference.safetensors"));
        using var model = LoadCausalLM(Lora("llama", "base"));
        Tensor Run() { using var o = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"] }); return o.Logits!.clone(); }
        var peft = PeftModel.FromPretrained(model, Lora("llama", "adapter"), "peft");
        peft.AddAdapter("mine", new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "o_proj"], InitLoraWeights = false });
        Assert.Equal("mine", peft.ActiveAdapter);
        Assert.True(MaxAbsError(Run(), reference["logits_with_adapter"]) > 1e-3);
        Assert.All(model.named_parameters(), p => Assert.Equal(p.name.Contains(".mine."), p.parameter.requires_grad));
        peft.SetAdapter("peft");
        Assert.True(MaxAbsError(Run(), reference["logits_with_adapter"]) <= 1e-4);
        Assert.DoesNotContain(model.named_parameters(), p => p.parameter.requires_grad); // loaded for inference
        peft.DeleteAdapter("mine");
        Assert.DoesNotContain(model.named_parameters(), p => p.name.Contains(".mine."));
        Assert.True(MaxAbsError(Run(), reference["logits_with_adapter"]) <= 1e-4);
    }

    [Fact]
    public void BiasesAndModulesToSaveRoundTripWithPeftKeys()
    {
        var dir = RepoPaths.NewTempDirectory();
        try
        {
            using var scope = NewDisposeScope();
            manual_seed(1);
            Tensor expected;
            using (var model = LoadCausalLM(Lora("phi", "base")))
            {
                var peft = PeftModel.Create(model, new LoraConfig { TargetModules = ["q_proj", "dense"], Bias = LoraBias.LoraOnly, ModulesToSave = ["lm_head"], InitLoraWeights = false });
                using (no_grad())
                    foreach (var parameter in peft.TrainableParameters())
                        parameter.add_(rand_like(parameter) * 0.1);
                expected = Logits(model);
                peft.SavePretrained(dir);
                var keys = peft.AdapterStateDict().Keys.ToList();
                Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", keys);
                Assert.Contains("base_model.model.model.layers.0.self_attn.dense.base_layer.bias", keys);
                Assert.Contains("base_model.model.lm_head.weight", keys);
                Assert.Contains("base_model.model.lm_head.bias", keys);
                Assert.DoesNotContain("base_model.model.model.layers.0.mlp.fc1.bias", keys); // not a LoRA layer
            }
            using var fresh = LoadCausalLM(Lora("phi", "base"));
            PeftModel.FromPretrained(fresh, dir);
            Assert.Equal(0, MaxAbsError(Logits(fresh), expected));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void QLoraMergeRequantizesTheBase()
    {
        using var scope = NewDisposeScope();
        var reference = LoadReference(Lora("llama", "reference.safetensors"));
        using var model = LoadCausalLM(Lora("llama", "base"));
        Quantizer.Quantize(model, new QuantizationOptions { Bits = 8 });
        var peft = PeftModel.FromPretrained(model, Lora("llama", "adapter"));
        Tensor Run() { using var o = model.Forward(new ModelInputs(reference["input_ids"]) { AttentionMask = reference["attention_mask"] }); return o.Logits!.clone(); }
        var withAdapter = Run();
        var merged = peft.MergeAndUnload();
        Assert.IsAssignableFrom<QuantizedLinear>(ModuleTree.Get(merged, "model.layers.0.self_attn.q_proj"));
        // Int8 re-quantization of the merged weight moves logits only slightly.
        Assert.True(MaxAbsError(Run(), withAdapter) < 0.05);
        Assert.True(MaxAbsError(withAdapter, reference["logits_with_adapter"]) < 0.05);
    }
}
